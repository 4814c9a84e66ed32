"""`ScoreStore.apply_many` (a poll at once) on the real database: the same facts, marks and
scores as `add` one event at a time, whatever the order and chunking; redelivery changes
nothing; two pollers racing on the same cases lose no event."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from pymongo import AsyncMongoClient

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.mongo import Document
from gridloop.scoring import ON_READ, Level, PeriodKind
from schemas.envelope import Envelope
from services.evaluation.scores import score
from services.evaluation.store import Key, ScoreStore
from tests.conftest import Servers
from tests.evaluation_story import OTHER_GRID, Story

StoreMaker = Callable[[], ScoreStore]


def stories() -> list[Story]:
    """Four cases of street 001 and 002: perfect, late and reopened, returned, voided."""
    tag = uuid.uuid4().hex[:6]
    return [
        # Filed, dispatched and an extension denied by the centre's people: every level.
        Story(f"B-{tag}-0")
        .reported()
        .filed(operator="wang")
        .dispatched(dispatcher="zhao")
        .acknowledged()
        .requested(f"{tag}-r1")
        .denied(f"{tag}-r1", "sun")
        .done(rating=5),
        Story(f"B-{tag}-1").reported().filed().dispatched().breach().done(rating=1).rework(),
        Story(f"B-{tag}-2")
        .reported(grid=OTHER_GRID)
        .filed(grid=OTHER_GRID)
        .dispatched("WATER")
        .returned("WATER")
        .dispatched()
        .done(rating=4),
        Story(f"B-{tag}-3").reported(channel="hotline").voided(),
    ]


@pytest.fixture
async def new_store(servers: Servers) -> AsyncIterator[StoreMaker]:
    """Each call: a store on a database of its own (dropped afterwards)."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    pack, names = load_city_pack(DEMO_CITY_PACK), []

    def make() -> ScoreStore:
        names.append(f"test_{uuid.uuid4().hex[:12]}")
        return ScoreStore(client[names[-1]], pack)

    try:
        yield make
    finally:
        for name in names:
            await client.drop_database(name)
        await client.close()


async def stored(store: ScoreStore) -> dict[str, Document]:
    """Each case's events (by id), facts and whether it is marked: what `add` and
    `apply_many` write."""
    logs = {doc["_id"]: doc["events"] async for doc in store.case_events.find({})}
    found = {}
    async for doc in store.case_facts.find({}):
        events = sorted(e["id"] for e in logs[doc["_id"]])
        marked = doc.get("dirty", 0) > 0
        found[doc["_id"]] = {"events": events, "facts": doc["facts"], "marked": marked}
    return found


async def all_scores(store: ScoreStore) -> dict[str, Document]:
    while await store.recompute_dirty():
        pass
    return {doc["_id"]: doc async for doc in store.scores.find({})}


async def test_a_poll_at_once_writes_what_one_by_one_writes(new_store: StoreMaker) -> None:
    events = [e for s in stories() for e in s.events]
    one, many = new_store(), new_store()
    for env in events:
        await one.add(env)
    shuffled = events + events[:5]  # out of order, some delivered twice
    random.Random(11).shuffle(shuffled)
    for start in range(0, len(shuffled), 7):
        await many.apply_many(shuffled[start : start + 7])
    assert await stored(many) == await stored(one)
    expected = await all_scores(one)
    assert "street/001/" + events[0].time.strftime("%Y-%m") in expected
    assert await all_scores(many) == expected


async def test_redelivery_changes_nothing(new_store: StoreMaker) -> None:
    events = [e for s in stories() for e in s.events]
    store = new_store()
    touched = await store.apply_many(events)
    street = Key(Level.street, "001", PeriodKind.month, events[0].time.strftime("%Y-%m"))
    assert street in touched
    figures = await all_scores(store)  # recomputed: the marks are cleared
    before = await stored(store)
    assert await store.apply_many(list(reversed(events))) == set()
    assert await store.pending() == 0  # no dirty mark: nothing to recompute
    assert await stored(store) == before
    assert await all_scores(store) == figures


async def test_racing_polls_lose_no_event(new_store: StoreMaker) -> None:
    cases = stories()
    reference, store = new_store(), new_store()
    for env in (e for s in cases for e in s.events):
        await reference.add(env)
    # Two members of the group each hold part of the same cases' events (a rebalance):
    # both read the cases, then both write; the write that lost is done again.
    halves: list[list[Envelope]] = [[], []]
    for story in cases:
        for n, env in enumerate(story.events):
            halves[n % 2].append(env)
    await asyncio.gather(store.apply_many(halves[0]), store.apply_many(halves[1]))
    assert _events_and_facts(await stored(store)) == _events_and_facts(await stored(reference))
    assert await all_scores(store) == await all_scores(reference)


def _events_and_facts(found: dict[str, Document]) -> dict[str, Document]:
    # Whether a race leaves a case marked may differ (moved by nothing then): not compared.
    return {k: {"events": v["events"], "facts": v["facts"]} for k, v in found.items()}


async def test_batched_scores_are_the_formulas_scores(new_store: StoreMaker) -> None:
    """Each score recomputed in a batch (each case judged once for all its periods) is what
    `scores.score` gives over the facts of that score alone."""
    store = new_store()
    await store.apply_many([e for s in stories() for e in s.events])
    recomputed = await store.recompute_dirty()
    assert {key.level for key, _ in recomputed} == set(Level) - ON_READ  # not stored
    for key, found in recomputed:
        name = store.name(key.level, key.entity)
        facts = await store.facts(key)
        alone = score(key.level, key.entity, name, key.period, key.kind, facts, store.policy)
        assert found == alone, key


async def test_events_stored_but_never_folded_are_folded_on_redelivery(
    new_store: StoreMaker,
) -> None:
    """A crash between the two writes: the events are stored, their facts are not. The
    redelivered poll adds no event but folds them."""
    events = [e for s in stories() for e in s.events]
    store = new_store()
    await store.apply_many(events)
    await all_scores(store)
    before = await stored(store)
    case_id = events[0].data.case_id
    await store.case_facts.delete_one({"_id": case_id})
    touched = await store.apply_many(events)
    assert touched and {k.entity for k in touched if k.level is Level.street} == {"001"}
    assert _events_and_facts(await stored(store)) == _events_and_facts(before)
