"""The duplicate search: open cases of a report's class around its point, reported within
its class's window (`find_duplicate` then measures the exact distance).

One query serves many reports: the reports that wait while a search runs go together in
the next (`Together`), as do the reports of a batch. The query asks only for the open
cases holding one of the cell keys of the reports' boxes (`CaseReader.near`: an equality
the index serves; SecantusDB scanned or tested every case for range, geo or further
conditions); each report then keeps the recent ones of its own class in its own box (and
the open ones: a case ending between the projection's write and this read).

Only open cases are asked for: a cell's ended cases, a history that only grows, were read
by every search (and, past `LIMIT`, crowded out the open ones) until 2026-12
(docs/benchmarks.md, "Growth").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from gridloop.cases.reader import CaseReader
from gridloop.citypack import CityPack
from gridloop.lifecycle import OPEN_STATES
from gridloop.nearby import Box, keys_around
from gridloop.together import Together
from schemas.events import CaseReported
from services.intake.duplicates import Nearby, search_box, within

LIMIT = 500  # candidates a report: the most open cases its box could sensibly hold


class DuplicateSearch:
    def __init__(self, cases: CaseReader, pack: CityPack, clock: Callable[[], datetime]) -> None:
        self.cases, self.pack, self.clock = cases, pack, clock
        self._together: Together[CaseReported, list[Nearby]] = Together(self.many)

    async def nearby(self, reported: CaseReported) -> list[Nearby]:
        """The report's candidates, found together with those of concurrent reports."""
        return await self._together(reported)

    async def many(self, reports: Sequence[CaseReported]) -> list[list[Nearby]]:
        """Each report's candidates, in one query."""
        boxes: list[Box] = []
        now = oldest = self.clock()
        for r in reports:
            cls = self.pack.classes.get((r.kind, r.class_code))
            if cls is None:  # a dispute: no class of the catalogue, never merged
                boxes.append(search_box(r.point, 0.0))
                continue
            boxes.append(search_box(r.point, cls.duplicate_radius_m))
            oldest = min(oldest, now - cls.duplicate_window)
        keys = {
            k
            for r, box in zip(reports, boxes, strict=True)
            for k in keys_around(r.kind, r.class_code, box)
        }
        of_class: dict[tuple[str, str], list[int]] = {}
        for i, r in enumerate(reports):
            if r.kind == "dispute":
                continue
            of_class.setdefault((r.kind, r.class_code), []).append(i)
        found: list[list[Nearby]] = [[] for _ in reports]
        for case in await self.cases.near(sorted(keys), LIMIT * len(reports)):
            if case.state not in OPEN_STATES or case.reported_at < oldest:
                continue
            near = Nearby(case.case_id, case.lon, case.lat, case.reported_at)
            for i in of_class.get((case.kind, case.class_code), ()):
                if within(boxes[i], case.lon, case.lat):
                    found[i].append(near)
        return found
