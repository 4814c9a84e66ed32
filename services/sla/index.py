"""The due-time index: which cases have something falling due, and when. Pure.

A heap of (due instant, case id) with one authoritative entry per case: `schedule` replaces
a case's time (earlier or later) and leaves the old heap entry behind, skipped when popped.
A tick pops only what is due, so its cost follows what falls due, not what is open.
The index is rebuilt from the table after recovery; it is never persisted.
"""

from __future__ import annotations

import heapq
from datetime import datetime


class DueIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._due

    def when(self, case_id: str) -> float | None:
        return self._due.get(case_id)

    def schedule(self, case_id: str, when: datetime | None) -> None:
        """Set (or, with None, clear) the next due instant of a case."""
        if when is None:
            self._due.pop(case_id, None)
            return
        ts = when.timestamp()
        if self._due.get(case_id) == ts:
            return
        self._due[case_id] = ts
        heapq.heappush(self._heap, (ts, case_id))
        if len(self._heap) > 2 * len(self._due) + 1024:
            self._compact()

    def pop_due(self, now: datetime, limit: int | None = None) -> list[str]:
        """The cases due at or before `now` (at most `limit`), earliest first; they leave
        the index and must be scheduled again if something is still to come."""
        ts, due = now.timestamp(), list[str]()
        while self._heap and self._heap[0][0] <= ts and (limit is None or len(due) < limit):
            at, case_id = heapq.heappop(self._heap)
            if self._due.get(case_id) == at:
                del self._due[case_id]
                due.append(case_id)
        return due

    def next_time(self) -> float | None:
        """The earliest scheduled instant (as a POSIX timestamp), if any."""
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def clear(self) -> None:
        self._heap.clear()
        self._due.clear()

    def _compact(self) -> None:
        self._heap = [(ts, case_id) for case_id, ts in self._due.items()]
        heapq.heapify(self._heap)
