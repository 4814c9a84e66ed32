"""The embedded database's CPU by command: what each kind of command a case costs SecantusDB.

The bench's servers start SecantusDB through this module (`servers(db_cost=path)`): it
wraps the server's command dispatch, timing each command with its thread's CPU clock, and
writes the totals by command, collection and filter fields to `path` five times a second. A
bench reads them before and after its run (`read`) and prints the difference (`rows`):
what the client-side counts (`db commands a case`) cannot say, the milliseconds of each.
Measurement only: production MongoDB has its own profiler.

    python -m bench.dbcost OUT.json SECANTUSD-ARGS...
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Totals = dict[str, tuple[int, int]]  # command → (CPU nanoseconds, how many)
SHOWN = 12  # the dearest commands a table shows


def shape(doc: Mapping[str, Any]) -> str:
    """A command as the table names it: its name, collection and the fields it filters on
    (the first statement's, for a write of several)."""
    name = next(iter(doc), "?")
    target = doc.get(name)
    where: Any = doc.get("filter") or doc.get("query")
    for key in ("updates", "deletes"):
        if doc.get(key):
            where = doc[key][0].get("q")
    fields = ",".join(sorted(where)) if isinstance(where, Mapping) else ""
    return f"{name} {target if isinstance(target, str) else ''} {fields}".rstrip()


def timed(dispatch: Callable[..., Any], totals: dict[str, list[int]]) -> Callable[..., Any]:
    lock = threading.Lock()

    def dispatching(doc: Mapping[str, Any], ctx: Any) -> Any:
        started = time.thread_time_ns()
        try:
            return dispatch(doc, ctx)
        finally:
            spent, key = time.thread_time_ns() - started, shape(doc)
            with lock:
                total = totals.setdefault(key, [0, 0])
                total[0] += spent
                total[1] += 1

    return dispatching


def _write_every(path: Path, totals: dict[str, list[int]], seconds: float) -> None:
    while True:
        time.sleep(seconds)
        snapshot = {k: list(v) for k, v in list(totals.items())}
        path.with_suffix(".tmp").write_text(json.dumps(snapshot))
        os.replace(path.with_suffix(".tmp"), path)


def read(path: Path | None) -> Totals:
    if path is None or not path.exists():
        return {}
    return {k: (v[0], v[1]) for k, v in json.loads(path.read_text()).items()}


def spent(before: Totals, after: Totals) -> Totals:
    """What the commands served between the two reads cost: `after` less `before`, the
    commands served at all."""
    out = {
        k: (ns - before.get(k, (0, 0))[0], n - before.get(k, (0, 0))[1])
        for k, (ns, n) in after.items()
    }
    return {k: v for k, v in out.items() if v[1] > 0}


def rows(before: Totals, after: Totals, cases: int) -> list[tuple[str, str]]:
    """The run's commands (`spent`), the dearest first: CPU a case, how many a case, CPU
    each."""
    ran = spent(before, after)
    if not ran or not cases:
        return []
    whole = sum(ns for ns, _ in ran.values()) / 1e6 / cases
    out = [("db CPU a case (dispatch)", f"{whole:.1f} ms by its commands, the dearest:")]
    for key, (ns, n) in sorted(ran.items(), key=lambda kv: -kv[1][0])[:SHOWN]:
        each = f"{ns / 1e6 / cases:.2f} ms a case, {n / cases:.2f} a case"
        out.append((f"  {key}", f"{each}, {ns / 1e3 / n:,.0f} µs each"))
    return out


def main() -> None:
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    import secantus.server as server  # the embedded extra; only in this process
    from secantus.cli import main as serve

    totals: dict[str, list[int]] = {}
    server.dispatch = timed(server.dispatch, totals)
    threading.Thread(target=_write_every, args=(out, totals, 0.2), daemon=True).start()
    sys.argv = ["secantusd-py", *argv]
    sys.exit(serve())


if __name__ == "__main__":
    main()
