"""Case numbers (立案编号): class + date + sequence, unique in the district.

A counter per (kind, class, day) hands out sequences; a case keeps the first number it was
given, so a retried filing of the same case shows the same number (a crash between the two
writes leaves a gap in the sequence, never a duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from gridloop.mongo import Document
from schemas.events import Kind
from services.intake.core import case_number


class CaseNumbers:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.counters = db["case_number_counters"]
        self.numbers = db["case_numbers"]
        self._moving: dict[str, asyncio.Lock] = {}

    async def advance(self, counter: str, by: int = 1) -> int:
        """Move a (kind, class, day) counter on by `by`; its new value.

        One move of a counter at a time from this process: concurrent updates of one
        document conflict in the storage engine, and SecantusDB retries them with pauses
        (bench_e2e stalled with hundreds of reports waiting on eight counters)."""
        async with self._moving.setdefault(counter, asyncio.Lock()):
            for _ in range(5):
                # Two first filings of a (kind, class, day) race to insert its counter: the
                # loser gets no document (SecantusDB) or a duplicate key (MongoDB); again.
                with contextlib.suppress(DuplicateKeyError):
                    doc = await self.counters.find_one_and_update(
                        {"_id": counter},
                        {"$inc": {"sequence": by}},
                        upsert=True,
                        return_document=ReturnDocument.AFTER,
                    )
                    if doc is not None:
                        return int(doc["sequence"])
        raise RuntimeError(f"no case number counter {counter}")

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
