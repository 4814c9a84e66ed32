"""Case numbers (立案编号): class + date + sequence, unique in the district.

A counter per (kind, class, day) hands out sequences; a case keeps the first number it was
given, so a retried filing of the same case shows the same number (a crash between the two
writes leaves a gap in the sequence, never a duplicate).
"""

from __future__ import annotations

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

    async def number_for(self, case_id: str, kind: Kind, class_code: str, day: date) -> str:
        given = await self.numbers.find_one({"_id": case_id})
        if given is not None:
            return str(given["number"])
        counter: Document | None = None
        for _ in range(5):
            # Two first filings of a (kind, class, day) race to insert its counter: the loser
            # gets no document (SecantusDB) or a duplicate key (MongoDB), and tries again.
            with contextlib.suppress(DuplicateKeyError):
                counter = await self.counters.find_one_and_update(
                    {"_id": f"{kind}:{class_code}:{day:%Y%m%d}"},
                    {"$inc": {"sequence": 1}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            if counter is not None:
                break
        if counter is None:
            raise RuntimeError(f"no case number counter for {kind}:{class_code}:{day}")
        number = case_number(kind, class_code, day, int(counter["sequence"]))
        with contextlib.suppress(DuplicateKeyError):
            await self.numbers.insert_one({"_id": case_id, "number": number})
            return number
        # A concurrent filing of the same case numbered it first: that number stands.
        given = await self.numbers.find_one({"_id": case_id})
        assert given is not None
        return str(given["number"])
