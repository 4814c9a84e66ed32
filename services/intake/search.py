"""The duplicate search: open cases of a report's class around its point, reported within
its class's window (`find_duplicate` then measures the exact distance).

One query serves many reports: the reports that wait while a search runs go together in
the next (`Together`), as do the reports of a batch. The query asks only for the cases
holding one of the `near` keys of the reports' boxes (`gridloop.nearby`: an equality the
index serves; SecantusDB scanned or tested every case for range, geo or further
conditions); each report then keeps the open, recent ones of its own class in its own box.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from pymongo.asynchronous.collection import AsyncCollection

from gridloop.citypack import CityPack
from gridloop.lifecycle import OPEN_STATES
from gridloop.mongo import Document
from gridloop.nearby import Box, keys_around
from schemas.events import CaseReported
from services.intake.duplicates import Nearby, search_box, within
from services.intake.together import Together

LIMIT = 500  # candidates a report: the most its box could sensibly hold


class DuplicateSearch:
    def __init__(
        self, cases: AsyncCollection[Document], pack: CityPack, clock: Callable[[], datetime]
    ) -> None:
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
            cls = self.pack.classes[(r.kind, r.class_code)]
            boxes.append(search_box(r.point, cls.duplicate_radius_m))
            oldest = min(oldest, now - cls.duplicate_window)
        keys = {
            k
            for r, box in zip(reports, boxes, strict=True)
            for k in keys_around(r.kind, r.class_code, box)
        }
        query = {"near": {"$in": sorted(keys)}}
        of_class: dict[tuple[str, str], list[int]] = {}
        for i, r in enumerate(reports):
            of_class.setdefault((r.kind, r.class_code), []).append(i)
        found: list[list[Nearby]] = [[] for _ in reports]
        projection = {"point": 1, "reported_at": 1, "kind": 1, "class_code": 1, "state": 1}
        async for doc in self.cases.find(query, projection).limit(LIMIT * len(reports)):
            if doc.get("state") not in OPEN_STATES or doc["reported_at"] < oldest:
                continue
            lon, lat = doc["point"]["coordinates"]
            near = Nearby(doc["_id"], lon, lat, doc["reported_at"])
            for i in of_class.get((doc["kind"], doc["class_code"]), ()):
                if within(boxes[i], lon, lat):
                    found[i].append(near)
        return found
