"""Case numbers (立案编号): class + date + sequence, unique in the district.

A counter per (kind, class, day) hands out sequences; a case keeps the first number it was
given, so a retried filing of the same case shows the same number (a crash between the two
writes leaves a gap in the sequence, never a duplicate).

A day's counters are the fields of one document (`case_number_counters`, `_id` the day,
`"event:0102": 17`): filings that wait, of whatever class, share its next move, one `$inc`
of the fields they need reserving a slice for each (a round trip for a group, not for
each). Until 2026-11 each counter was a document of its own (`_id` `event:0102:20261129`);
`adopt_counters` carries the recent ones over when intake starts.
"""

from __future__ import annotations

import contextlib
from datetime import date, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from gridloop.mongo import Document
from gridloop.together import Together
from schemas.events import Kind
from services.intake.reporting import case_number

Want = tuple[str, int]  # a counter of the day ("event:0102"), how many sequences


class CaseNumbers:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.counters = db["case_number_counters"]
        self.numbers = db["case_numbers"]
        self._days: dict[str, Together[Want, int]] = {}

    async def advance(self, counter: str, by: int = 1) -> int:
        """Reserve the next `by` sequences of a (kind, class, day) counter
        (`event:0102:20261129`); the last of them.

        One move of a day's counters at a time from this process: concurrent updates of
        one document conflict in the storage engine, and SecantusDB retries them with
        pauses (bench_e2e stalled with hundreds of reports waiting on eight counters). The
        next move serves everyone then waiting, each counter moving by the sum asked of it
        and each filing taking its slice, in the order they came."""
        field, _, day = counter.rpartition(":")
        if (together := self._days.get(day)) is None:

            async def serve(wants: list[Want]) -> list[int]:
                return await self._move(day, wants)

            together = self._days[day] = Together(serve)
        return await together((field, by))

    async def _move(self, day: str, wants: list[Want]) -> list[int]:
        """One `$inc` of a day's counters; the last sequence of each want."""
        moves: dict[str, int] = {}
        for field, by in wants:
            moves[field] = moves.get(field, 0) + by
        for _ in range(5):
            # Two first filings of a day race to insert its document: the loser gets no
            # document (SecantusDB) or a duplicate key (MongoDB); again.
            with contextlib.suppress(DuplicateKeyError):
                doc = await self.counters.find_one_and_update(
                    {"_id": day},
                    {"$inc": moves},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                if doc is not None:
                    break
        else:
            raise RuntimeError(f"no case number counters for {day}")
        last = {field: int(doc[field]) - n for field, n in moves.items()}
        ends = []
        for field, by in wants:
            last[field] += by
            ends.append(last[field])
        return ends

    async def adopt_counters(self, today: date) -> None:
        """Carry the counters kept a document each (before 2026-11) of recent days (the
        city's `today`, the day before, later ones) into their day's document, so that
        numbering goes on after them. Run at start, before any filing, with no intake of
        the older kind still running."""
        # Yesterday's too: workers' clocks a little apart around midnight.
        since = f"{today - timedelta(days=1):%Y%m%d}"
        async for doc in self.counters.find({"sequence": {"$exists": True}}):
            field, _, day = str(doc["_id"]).rpartition(":")
            if field and day >= since:
                await self._raise_to(day, field, int(doc["sequence"]))

    async def _raise_to(self, day: str, field: str, sequence: int) -> None:
        for _ in range(5):
            # Workers starting together race to insert the day's document, as in `_move`.
            with contextlib.suppress(DuplicateKeyError):
                change = {"$max": {field: sequence}}
                done = await self.counters.update_one({"_id": day}, change, upsert=True)
                if done.matched_count or done.upserted_id is not None:
                    return
        raise RuntimeError(f"could not carry counter {field} of {day} over")

    async def number_for(
        self, case_id: str, kind: Kind, class_code: str, day: date, fresh: bool = False
    ) -> str:
        """`fresh`: the case id was made just now (a report without an Idempotency-Key), so
        it has no number yet and no retry can ask again: one round trip instead of three."""
        given = None if fresh else await self.numbers.find_one({"_id": case_id})
        if given is not None:
            return str(given["number"])
        sequence = await self.advance(f"{kind}:{class_code}:{day:%Y%m%d}")
        number = case_number(kind, class_code, day, sequence)
        if fresh:
            return number
        with contextlib.suppress(DuplicateKeyError):
            await self.numbers.insert_one({"_id": case_id, "number": number})
            return number
        # A concurrent filing of the same case numbered it first: that number stands.
        given = await self.numbers.find_one({"_id": case_id})
        assert given is not None
        return str(given["number"])
