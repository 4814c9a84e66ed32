"""Encode + decode of one CloudEvent record, against its ceiling: pydantic alone.

    python -m bench.bench_envelope [N]

The envelope adds the `ce_*` headers, the deterministic id and the header checks to what
pydantic does anyway; the ratio says what that costs on every record of every service.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable

from schemas.envelope import Envelope, decode, encode
from schemas.events import Actor, CaseReported, Channel, Point, Role


def _event(n: int) -> CaseReported:
    return CaseReported(
        case_id=f"case-{n}",
        version=1,
        actor=Actor(role=Role.supervisor, id="SUP-1"),
        channel=Channel.supervisor,
        kind="component",
        class_code="0101",
        point=Point(lon=116.4005, lat=39.9204),
        grid_code="110101001001001",
        description="上水井盖破损 broken water manhole cover",
    )


def _rate(n: int, step: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for i in range(n):
        step(i)
    return n / (time.perf_counter() - started)


def main(n: int = 50_000) -> None:
    events = [_event(i) for i in range(1_000)]

    def ceiling(i: int) -> object:
        e = events[i % 1_000]
        return CaseReported.model_validate_json(e.model_dump_json())

    def ours(i: int) -> object:
        _, value, headers = encode(Envelope(events[i % 1_000], "/bench"))
        return decode(value, headers)

    base, mine = _rate(n, ceiling), _rate(n, ours)
    print(f"machine: {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}")
    print(f"{'':28}{'records/s':>12}")
    print(f"{'pydantic dump+validate':28}{base:>12,.0f}")
    print(f"{'envelope encode+decode':28}{mine:>12,.0f}")
    print(f"{'ratio':28}{mine / base:>12.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
