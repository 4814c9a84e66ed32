"""The system's clock for domain time: when events happen, deadlines, SLA ticks.

Real time, unless a simulation compresses it: `GRIDLOOP_SIM_START` (an ISO instant, the
simulated time at the real instant `GRIDLOOP_SIM_EPOCH`, Unix seconds) and
`GRIDLOOP_SIM_SPEED` (simulated seconds per real second). Every process of one system gets
the same three values from its environment, so they all read the same simulated time.

Infrastructure timing (webhook retries, idempotency windows, rate limits, timeouts) stays
on the real clock: a compressed retry schedule would only hammer a department.

It lives with the contract because an event's `time` is domain time (`Envelope` stamps it
by default): schemas import nothing of the kernel, and the kernel and services read the
clock from here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Compression:
    start: datetime  # simulated time at `epoch`
    epoch: float  # real Unix time
    speed: float  # simulated seconds per real second

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.epoch) * self.speed)

    def environment(self) -> dict[str, str]:
        """The variables that give a child process this clock."""
        return {
            "GRIDLOOP_SIM_START": self.start.isoformat(),
            "GRIDLOOP_SIM_EPOCH": repr(self.epoch),
            "GRIDLOOP_SIM_SPEED": repr(self.speed),
        }


def _from_environment() -> Compression | None:
    start = os.environ.get("GRIDLOOP_SIM_START")
    if not start:
        return None
    at = datetime.fromisoformat(start)
    if at.tzinfo is None:
        raise ValueError("GRIDLOOP_SIM_START needs a time zone offset, e.g. 2026-11-02T08:00+08:00")
    speed = float(os.environ.get("GRIDLOOP_SIM_SPEED", "1"))
    if not speed > 0:
        raise ValueError(f"GRIDLOOP_SIM_SPEED must be positive, got {speed}")
    return Compression(at.astimezone(UTC), float(os.environ["GRIDLOOP_SIM_EPOCH"]), speed)


_compression = _from_environment()


def now() -> datetime:
    """Domain time, in UTC: the real time, or the simulated one."""
    return _compression.now() if _compression else datetime.now(UTC)


def speed() -> float:
    """Simulated seconds per real second (1 on the real clock)."""
    return _compression.speed if _compression else 1.0


def compress(start: datetime, speed: float) -> Compression:
    """A compression starting now (for a simulation launcher to pass to its children)."""
    return Compression(start.astimezone(UTC), time.time(), speed)
