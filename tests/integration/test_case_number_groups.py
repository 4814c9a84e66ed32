"""Case numbers handed out in groups: filings waiting on one counter share its next move."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date

import pytest
from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandListener, CommandStartedEvent

from gridloop.mongo import Document
from schemas.events import Kind
from services.intake.numbering import CaseNumbers
from tests.conftest import Servers

DAY = date(2025, 3, 1)


class Moves(CommandListener):
    """Counts the counter moves (`findAndModify`) the client sends."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name.lower() == "findandmodify":
            self.count += 1

    def succeeded(self, event: object) -> None:
        pass

    def failed(self, event: object) -> None:
        pass


@pytest.fixture
async def counted(servers: Servers) -> AsyncIterator[tuple[CaseNumbers, Moves]]:
    moves = Moves()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        servers.mongodb, tz_aware=True, event_listeners=[moves]
    )
    try:
        yield CaseNumbers(client[f"test_{uuid.uuid4().hex[:12]}"]), moves
    finally:
        await client.close()


async def test_waiting_filings_share_a_move_and_take_every_number_once(
    counted: tuple[CaseNumbers, Moves],
) -> None:
    numbers, moves = counted
    given = await asyncio.gather(
        *(numbers.number_for(f"C-{i}", "event", "0102", DAY, fresh=True) for i in range(40))
    )
    # No gap, no repeat: the 40 filings took 0001…0040 between them.
    assert sorted(n[-4:] for n in given) == [f"{i:04d}" for i in range(1, 41)]
    # The first moves the counter alone; those who came meanwhile share the next moves.
    assert moves.count < 10


async def test_a_lone_filing_takes_one_and_a_batch_its_slice(
    counted: tuple[CaseNumbers, Moves],
) -> None:
    numbers, _ = counted
    assert (await numbers.number_for("C-a", "event", "0102", DAY, fresh=True))[-4:] == "0001"
    assert await numbers.advance("event:0102:20250301", 5) == 6  # the batch's last: 2…6
    assert (await numbers.number_for("C-b", "event", "0102", DAY, fresh=True))[-4:] == "0007"


async def test_a_filing_cancelled_while_waiting_costs_no_number(
    counted: tuple[CaseNumbers, Moves],
) -> None:
    numbers, _ = counted
    tasks = [
        asyncio.create_task(numbers.number_for(f"C-{i}", "event", "0102", DAY, fresh=True))
        for i in range(6)
    ]
    await asyncio.sleep(0)  # every filing is waiting: the first moves, the others queue
    tasks[3].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    given = sorted(str(n)[-4:] for i, n in enumerate(done) if i != 3)
    assert given == ["0001", "0002", "0003", "0004", "0005"]


async def test_filings_of_different_classes_share_the_day_s_move(
    counted: tuple[CaseNumbers, Moves],
) -> None:
    numbers, moves = counted
    classes: list[tuple[Kind, str]] = [("event", "0102"), ("event", "0505"), ("component", "0101")]
    wanted = [classes[i % 3] for i in range(30)]
    given = await asyncio.gather(
        *(
            numbers.number_for(f"C-{i}", kind, code, DAY, fresh=True)
            for i, (kind, code) in enumerate(wanted)
        )
    )
    for kind, code in classes:  # each class counts on its own, from 0001, no gap
        prefix = ("B" if kind == "component" else "S") + code
        mine = sorted(n[-4:] for n in given if n.startswith(prefix))
        assert mine == [f"{i:04d}" for i in range(1, 11)]
    assert moves.count < 10  # not one move per filing, nor one per class and filing


async def test_counters_kept_a_document_each_are_carried_into_their_day(
    counted: tuple[CaseNumbers, Moves],
) -> None:
    numbers, _ = counted
    await numbers.counters.insert_many(
        [
            {"_id": "event:0102:20250301", "sequence": 41},  # today's, by an older intake
            {"_id": "component:0101:20250302", "sequence": 7},  # tomorrow's: a clock ahead
            {"_id": "event:0505:20250220", "sequence": 9},  # long past: left alone
        ]
    )
    await numbers.adopt_counters(DAY)
    await numbers.adopt_counters(DAY)  # again (a restart): no harm
    assert (await numbers.number_for("C-1", "event", "0102", DAY, fresh=True))[-4:] == "0042"
    tomorrow = date(2025, 3, 2)
    assert (await numbers.number_for("C-2", "component", "0101", tomorrow))[-4:] == "0008"
    assert await numbers.counters.find_one({"_id": "20250220"}) is None
    # A day document already past an old counter keeps its own count.
    await numbers.counters.insert_one({"_id": "event:0505:20250301", "sequence": 1})
    await numbers.advance("event:0505:20250301", 5)
    await numbers.adopt_counters(DAY)
    assert (await numbers.number_for("C-3", "event", "0505", DAY, fresh=True))[-4:] == "0006"
