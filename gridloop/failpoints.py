"""Named points where the fault suite kills a process, to prove that a crash there loses
and doubles nothing (`tests/faults`).

`GRIDLOOP_CRASH_AT=claimed:3` makes the process kill itself with SIGKILL the third time it
reaches the point `claimed` (after a command claimed its case's next version, before the
events are published). Unset, `reach` is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_armed: dict[str, int] = {}
if spec := os.environ.get("GRIDLOOP_CRASH_AT"):
    name, _, count = spec.partition(":")
    _armed[name] = int(count or "1")


def reach(point: str) -> None:
    """Kill this process here if the fault suite armed `point` and its count ran out."""
    if point not in _armed:
        return
    _armed[point] -= 1
    if _armed[point] <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
