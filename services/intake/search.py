"""The duplicate search: open cases of a report's class around its point, reported within
its class's window (`find_duplicate` then measures the exact distance).

One query serves many reports: the reports that wait while a search runs go together in
the next (`Together`), as do the reports of a batch. The query asks for the cases whose
`point` lies in any report's box (`$geoWithin`, which the cases' 2dsphere index serves;
range conditions on the coordinates made SecantusDB scan every case), of the reports'
classes, open, recent; each report then takes those of its own class in its own box.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from pymongo.asynchronous.collection import AsyncCollection

from gridloop.citypack import CityPack
from gridloop.lifecycle import OPEN_STATES
from gridloop.mongo import Document
from schemas.events import CaseReported
from services.intake.duplicates import Box, Nearby, search_area, search_box, within
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
        query = {
            "point": {"$geoWithin": {"$geometry": search_area(boxes)}},
            "class_code": {"$in": sorted({r.class_code for r in reports})},
            "state": {"$in": sorted(OPEN_STATES)},
            "reported_at": {"$gte": oldest},
        }
        of_class: dict[tuple[str, str], list[int]] = {}
        for i, r in enumerate(reports):
            of_class.setdefault((r.kind, r.class_code), []).append(i)
        found: list[list[Nearby]] = [[] for _ in reports]
        projection = {"point": 1, "reported_at": 1, "kind": 1, "class_code": 1}
        async for doc in self.cases.find(query, projection).limit(LIMIT * len(reports)):
            lon, lat = doc["point"]["coordinates"]
            near = Nearby(doc["_id"], lon, lat, doc["reported_at"])
            for i in of_class.get((doc["kind"], doc["class_code"]), ()):
                if within(boxes[i], lon, lat):
                    found[i].append(near)
        return found
