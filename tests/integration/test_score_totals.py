"""Scores moved by running totals (`totals.py`) on the real database: step by step they are
the scores of every fact; a recomputer that dies anywhere, or two that race, count each
case once; a recompute reads the changed cases only; cases from before are adopted."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from gridloop.mongo import Document, index_names
from schemas.envelope import Envelope
from services.evaluation import totals
from services.evaluation.scores import score
from services.evaluation.store import ScoreStore, keys_of
from tests.conftest import Servers
from tests.evaluation_story import OTHER_GRID, Story
from tests.helpers import held
from tests.integration.test_evaluation_batch import StoreMaker, new_store, stories

__all__ = ["new_store"]  # the fixture, used by name


def more_stories() -> list[Story]:
    """`stories` and a case filed in another street than it was reported in."""
    moved = Story(f"M-{random.randrange(10**9)}").reported().filed(grid=OTHER_GRID)
    return [*stories(), moved.dispatched().done(rating=2)]


async def expected(store: ScoreStore) -> dict[str, Document]:
    """Every score as the facts of its cases give it (none where no case counts)."""
    keys = {key async for doc in store.case_facts.find({}) for key in keys_of(doc)}
    found = {}
    for key in keys:
        facts = await store.facts(key)
        name = store.name(key.level, key.entity)
        if facts:
            computed = score(key.level, key.entity, name, key.period, key.kind, facts, store.policy)
            found[key.id] = computed.model_dump(mode="json")
    return found


async def stored(store: ScoreStore) -> dict[str, Document]:
    return {
        doc.pop("_id"): {k: v for k, v in doc.items() if k != "version"}
        async for doc in store.scores.find({})
    }


async def settle(*stores: ScoreStore) -> None:
    while any(await asyncio.gather(*(s.recompute_dirty() for s in stores))):
        pass


def shuffled_polls(events: list[Envelope], size: int, seed: int) -> Iterator[list[Envelope]]:
    again = events + events[:4]  # out of order, some delivered twice
    random.Random(seed).shuffle(again)
    for start in range(0, len(again), size):
        yield again[start : start + size]


async def test_scores_moved_step_by_step_are_the_scores_of_every_fact(
    new_store: StoreMaker,
) -> None:
    store = new_store()
    events = [e for s in more_stories() for e in s.events]
    for poll in shuffled_polls(events, 3, seed=5):
        await store.apply_many(poll)
        await store.recompute_dirty()  # scores moved between every poll
    await settle(store)
    assert await stored(store) == await expected(store)
    assert "street/002/2026-11" in await stored(store)


@pytest.mark.parametrize("dies_in", ["_settle", "_scores"])
async def test_a_recomputer_that_died_is_finished_once(
    new_store: StoreMaker, monkeypatch: pytest.MonkeyPatch, dies_in: str
) -> None:
    """Dead after claiming its cases (`_settle`), or after moving the totals (`_scores`):
    its journal is finished by the next recompute, and finishing it again moves nothing."""
    store = new_store()
    await store.apply_many([e for s in more_stories() for e in s.events])
    real = getattr(store.totals, dies_in)

    async def dies(*args: Any) -> Any:
        if dies_in == "_scores":
            await real(*args)  # written…
        raise RuntimeError("killed")  # …then killed before the journal is deleted

    monkeypatch.setattr(store.totals, dies_in, dies)
    with pytest.raises(RuntimeError):
        await store.recompute_dirty()
    monkeypatch.undo()
    [left] = await store.totals.journal.find({}).to_list()
    # Its cases were claimed (no mark left): the journal keeps them pending.
    assert await store.case_facts.count_documents({"dirty": {"$gt": 0}}) == 0
    assert await store.pending() == len(left["moves"]) == len(more_stories())
    monkeypatch.setattr(totals, "ABANDONED", timedelta(0))
    await settle(store)
    assert await store.totals.journal.count_documents({}) == 0
    assert await stored(store) == await expected(store)
    moves = [totals.Move.of(m) for m in left["moves"]]
    before = await store.totals.totals.find({}).to_list()
    await store.totals._settle(left["_id"], moves)  # finished twice (two recomputers)
    assert await store.totals.totals.find({}).to_list() == before
    assert await stored(store) == await expected(store)


async def test_two_recomputers_racing_count_each_case_once(new_store: StoreMaker) -> None:
    one = new_store()
    other = ScoreStore(one.case_facts.database, one.pack)
    events = [e for s in more_stories() for e in s.events]
    for poll in shuffled_polls(events, 5, seed=9):
        await one.apply_many(poll)
        # Both read the same dirty cases: one claims each, the other moves nothing by it.
        await asyncio.gather(one.recompute_dirty(), other.recompute_dirty())
    await settle(one, other)
    assert await stored(one) == await expected(one)


class Reads(monitoring.CommandListener):
    """How many case documents each `find` of evaluation_cases returned."""

    def __init__(self) -> None:
        self.cases: list[int] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        reply = event.reply.get("cursor", {})
        if reply.get("ns", "").endswith(".evaluation_cases") and event.command_name == "find":
            self.cases.append(len(reply.get("firstBatch", [])))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_recompute_reads_the_changed_cases_only(
    new_store: StoreMaker, servers: Servers
) -> None:
    """However many cases the month holds, one changed case is one case read."""
    many = [Story(f"N-{n}-{random.randrange(10**9)}").reported().filed() for n in range(30)]
    store = new_store()
    await store.apply_many([e for s in many for e in s.events])
    await settle(store)
    reads = Reads()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        servers.mongodb, tz_aware=True, event_listeners=[reads]
    )
    try:
        watched = ScoreStore(client[store.case_facts.database.name], store.pack)
        await watched.apply_many(many[0].dispatched().events[-1:])
        reads.cases.clear()
        moved = await watched.recompute_dirty()
        assert {key.entity for key, _ in moved} >= {"001"}  # its street moved…
        assert sum(reads.cases) == 2  # …by reading that case, then finding it claimed
        assert await stored(watched) == await expected(watched)
    finally:
        await client.close()


async def test_cases_stored_before_running_totals_are_adopted_once(
    new_store: StoreMaker,
) -> None:
    store = new_store()
    await store.apply_many([e for s in more_stories() for e in s.events])
    await settle(store)
    scores = await stored(store)
    # As a release without running totals left them: no totals, nothing counted.
    db = store.case_facts.database
    await db.drop_collection("score_totals")
    await db.drop_collection("evaluation_meta")
    await store.case_facts.update_many(
        {}, {"$unset": {"counted": "", "crev": "", "counted_by": ""}}
    )
    assert await store.totals.adopt() == len(more_stories())  # each case, once
    assert await store.totals.adopt() == 0  # remembered
    await settle(store)
    assert await stored(store) == scores


async def test_only_the_marked_cases_are_in_the_index_a_round_reads(
    new_store: StoreMaker,
) -> None:
    """The cases counted long ago (the history, most) are not in the index of the marked:
    a round and `pending` read the marked ones, however long the history. A full index on
    `dirty` from before is replaced once."""
    store = new_store()
    await store.case_facts.create_index("dirty")  # as an earlier release made it
    await store.create_indexes()
    await store.create_indexes()  # again: nothing to replace, nothing refused
    names = await index_names(store.case_facts)
    assert totals.MARKED_INDEX in names and "dirty_1" not in names

    many = [Story(f"H-{n}-{random.randrange(10**9)}").reported().filed() for n in range(12)]
    await store.apply_many([e for s in many for e in s.events])
    assert await store.pending() == 12
    await settle(store)
    assert await store.pending() == 0
    await store.apply_many(many[0].dispatched().events[-1:])  # one of them changes

    assert await held(store.case_facts, totals.MARKED_INDEX) == [many[0].case_id]
    assert await store.pending() == 1
    plan = await store.case_facts.find(totals.MARKED).explain()
    assert totals.MARKED_INDEX in str(plan["queryPlanner"]["winningPlan"])
