"""Case numbers on a real MongoDB-protocol server: concurrent first filings of a day."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

from pymongo import AsyncMongoClient

from gridloop.mongo import Document
from services.intake.numbering import CaseNumbers
from tests.conftest import Servers


async def test_concurrent_first_filings_of_a_class_get_distinct_numbers(
    servers: Servers,
) -> None:
    # Racing upserts of a new day's counter: SecantusDB answers some with no document.
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    try:
        numbers = CaseNumbers(client[f"test_{uuid.uuid4().hex[:12]}"])
        cases = [f"C-{i}" for i in range(12)]
        given = await asyncio.gather(
            *(numbers.number_for(c, "event", "0102", date(2025, 3, 1)) for c in cases)
        )
        assert len(set(given)) == len(cases)
        again = await numbers.number_for(cases[0], "event", "0102", date(2025, 3, 1))
        assert again == given[0]
    finally:
        await client.close()


async def test_a_fresh_case_takes_the_next_number_and_keeps_no_record(servers: Servers) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    try:
        numbers = CaseNumbers(client[f"test_{uuid.uuid4().hex[:12]}"])
        day = date(2025, 3, 1)
        kept = await numbers.number_for("C-kept", "event", "0102", day)
        fresh = await numbers.number_for("C-fresh", "event", "0102", day, fresh=True)
        assert (kept[-4:], fresh[-4:]) == ("0001", "0002")
        # Only a case that may be asked again (by a retry) has its number kept.
        assert [d["_id"] async for d in numbers.numbers.find()] == ["C-kept"]
    finally:
        await client.close()
