"""Notify's deliverers claim a round of deliveries with one update and record the outcomes
of their posts together; two deliverers on one outbox still post each delivery once, and a
lease that ran out is the only way a delivery is taken from the worker that claimed it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gridloop.cases.reader import CaseReader
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import CaseExtended
from services.notify.core import RetrySchedule
from services.notify.service import Deliverer, DeliveryPolicy, Notify
from services.notify.store import Outcome
from tests.conftest import Servers
from tests.helpers import eventually
from tests.integration.notify_world import (
    CC,
    Receiver,
    World,
    attempts_logged,
    dispatched,
    open_world,
    point_at,
    receiving,
)

LEASE = timedelta(seconds=30)
POLICY = DeliveryPolicy(
    schedule=RetrySchedule.parse("0,0.3", jitter=0),
    timeout=5.0,
    concurrency=8,
    circuit_threshold=1000,
    poll=0.05,
)


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[World]:
    async with open_world(servers) as found:
        yield found


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as found:
        yield found


async def enqueued(world: World, n: int, departments: tuple[str, ...] = ("SANITATION",)) -> None:
    """`n` dispatched cases, their deliveries in the outbox in one poll."""
    envs = [dispatched(departments[i % len(departments)]) for i in range(n)]
    for env in envs:
        await world.project(env.data.case_id)
    await Notify(world.pack, CaseReader(world.db), world.store).on_events(envs)


def ids(docs: list[Document]) -> set[str]:
    return {d["_id"] for d in docs}


def failed_once(doc: Document, claim: str) -> Outcome:
    """A failed first attempt, due again at once."""
    attempt: Document = {"delivery_id": doc["_id"], "replay": 0, "attempt": 1, "outcome": "failed"}
    change: Document = {"attempts": 1, "next_at": datetime.now(UTC)}
    return Outcome(attempt, change, claim)


async def test_claims_made_from_one_read_take_each_delivery_once(world: World) -> None:
    await enqueued(world, 6)
    read = await world.store.pending()  # both workers read the outbox before either claims
    world.commands.clear()

    first = await world.store.claim(read[:3], "a/1", LEASE)
    second = await world.store.claim(read, "b/1", LEASE)

    assert first == ids(read[:3])
    assert second == ids(read[3:])  # the rest, learnt with one read
    assert await world.store.claim(read, "c/1", LEASE) == set()
    claims = world.commands.of("update", "deliveries")
    assert [len(c["updates"]) for c in claims] == [1, 1, 1]  # one update_many each
    assert len(world.commands.of("find", "deliveries")) == 1  # only the partial claim reads


async def test_only_a_lease_that_ran_out_gives_a_delivery_to_another(world: World) -> None:
    await enqueued(world, 2)
    stale, expiring = await world.store.pending()
    assert await world.store.claim([stale], "a/1", LEASE) == {stale["_id"]}
    await world.store.record([failed_once(stale, "a/1")])
    # Attempted since it was read, though due again: a claim from the old read misses it.
    assert await world.store.claim([stale], "b/1", LEASE) == set()
    assert await world.store.claim(await world.store.pending(), "b/2", LEASE) == ids(
        [stale, expiring]
    )

    again = (await world.store.find({"_id": expiring["_id"]}))[0]
    assert await world.store.claim([again], "c/1", LEASE) == set()  # b/2 holds it
    await world.store.deliveries.update_one(
        {"_id": expiring["_id"]}, {"$set": {"lease_until": datetime.now(UTC)}}
    )  # b/2's worker died; its lease ran out
    assert await world.store.claim([again], "c/1", LEASE) == {expiring["_id"]}
    # b/2's late outcome is logged but does not move the delivery c/1 now holds.
    await world.store.record([failed_once(again, "b/2")])
    await world.store.record([failed_once(again, "b/2")])  # its write retried: logged once
    doc = (await world.store.find({"_id": expiring["_id"]}))[0]
    assert (doc["attempts"], doc["lease_owner"]) == (0, "c/1")
    assert await attempts_logged(world.store, {"_id": expiring["_id"]}) == 1


async def test_two_deliverers_on_one_outbox_post_each_delivery_once(
    world: World, receiver: Receiver
) -> None:
    departments = ("SANITATION", "WATER", "ROADS")
    await point_at(world, receiver, *departments)
    await enqueued(world, 24, departments)
    wake, stop = asyncio.Event(), asyncio.Event()  # one wake: both look at once
    async with httpx.AsyncClient() as http:
        both = [Deliverer(world.pack, world.store, http, POLICY, wake) for _ in range(2)]
        runs = [asyncio.create_task(d.run(stop)) for d in both]
        try:
            await eventually(lambda: _delivered(world, 24), within=30, what="24 delivered")
        finally:
            stop.set()
            await asyncio.gather(*runs)
    assert len(receiver.requests) == len(set(receiver.requests)) == 24
    assert await attempts_logged(world.store) == 24


async def test_a_round_is_claimed_at_once_and_its_outcomes_recorded_together(
    world: World, receiver: Receiver
) -> None:
    receiver.hold = 8  # the eight posts are answered together
    await point_at(world, receiver, "SANITATION")
    await enqueued(world, 8)
    world.commands.clear()
    stop = asyncio.Event()
    async with httpx.AsyncClient() as http:
        running = asyncio.create_task(Deliverer(world.pack, world.store, http, POLICY).run(stop))
        try:
            await eventually(lambda: _delivered(world, 8), within=30, what="8 delivered")
        finally:
            stop.set()
            await running
    claims = [c for c in world.commands.of("update", "deliveries") if _claims(c)]
    assert len(claims) == 1  # all eight in one round
    moves = [c for c in world.commands.of("update", "deliveries") if not _claims(c)]
    assert sum(len(c["updates"]) for c in moves) == 8
    assert len(moves) <= 4  # together, not one write per post
    # Each attempt logged in the write that moved its delivery: nothing else written.
    assert world.commands.of("update", "delivery_attempts") == []
    assert await attempts_logged(world.store) == 8


def _claims(command: Document) -> bool:
    return any(
        "lease_until" in u["u"].get("$set", {}) and u.get("multi") for u in command["updates"]
    )


async def _delivered(world: World, n: int) -> bool:
    return await world.store.deliveries.count_documents({"status": "delivered"}) >= n


# A poll long enough that only an attempt's end can start the next round in these tests.
SLOW_POLL = replace(POLICY, poll=60.0)


async def _deliver_all(world: World, n: int, policy: DeliveryPolicy = SLOW_POLL) -> None:
    stop = asyncio.Event()
    async with httpx.AsyncClient() as http:
        running = asyncio.create_task(Deliverer(world.pack, world.store, http, policy).run(stop))
        try:
            await eventually(lambda: _delivered(world, n), within=20, what=f"{n} delivered")
            await asyncio.sleep(0.3)  # a round an attempt's end would start, if any
        finally:
            stop.set()
            await running


async def test_an_attempt_that_frees_nothing_reads_the_outbox_no_more(
    world: World, receiver: Receiver
) -> None:
    await point_at(world, receiver, "SANITATION")
    await enqueued(world, 1)
    world.commands.clear()
    await _deliver_all(world, 1)
    # The round that took it; not another when it was recorded (nothing waited on it).
    assert len(world.commands.of("find", "deliveries")) == 1


async def test_a_cases_next_message_goes_when_the_one_before_is_recorded(
    world: World, receiver: Receiver
) -> None:
    await point_at(world, receiver, "SANITATION")
    first = dispatched()
    extended = CaseExtended(
        case_id=first.data.case_id,
        version=4,
        actor=CC,
        deadline=first.time + timedelta(days=2),
    )
    await world.project(first.data.case_id, version=4)
    notify = Notify(world.pack, CaseReader(world.db), world.store)
    await notify.on_events([first, Envelope(extended, "/tests")])
    # The second waits for the first (one at a time a case): the first's end, not the
    # 60 s poll, starts the round that sends it.
    await _deliver_all(world, 2)
    assert len(receiver.requests) == 2


async def test_a_department_at_its_limit_sends_the_next_when_one_ends(
    world: World, receiver: Receiver
) -> None:
    await point_at(world, receiver, "SANITATION")
    await enqueued(world, 3)
    one_at_a_time = replace(SLOW_POLL, concurrency=1)
    await _deliver_all(world, 3, one_at_a_time)
    assert len(receiver.requests) == 3


async def test_a_delivery_shows_the_attempts_logged_before_its_log_was_kept_in_it(
    world: World,
) -> None:
    await enqueued(world, 1)
    (doc,) = await world.store.pending()
    # An attempt as notify logged it before `attempt_log`: a document of its own.
    older = failed_once(doc, "a/1").attempt | {"at": datetime.now(UTC), "status_code": 503}
    await world.store.attempts.insert_one({"_id": f"{doc['_id']}/0/1"} | older)
    await world.store.deliveries.update_one({"_id": doc["_id"]}, {"$set": {"attempts": 1}})
    (doc,) = await world.store.pending()
    assert await world.store.claim([doc], "a/2", LEASE) == {doc["_id"]}
    second = failed_once(doc, "a/2")
    second.attempt.update(attempt=2, status_code=204)
    await world.store.record([second])
    shown = await world.store.get(doc["_id"])
    assert shown is not None
    assert [(a["attempt"], a["status_code"]) for a in shown["attempt_log"]] == [(1, 503), (2, 204)]
    assert all("_id" not in a and "id" not in a for a in shown["attempt_log"])
