"""Notify's consumer handles a poll at once: one read of its cases, one write of its
deliveries, whatever the number of events; a poll handled again adds nothing; a case not
projected yet holds back only its own deliveries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from gridloop.cases.reader import CaseReader
from gridloop.contacts import MasterKeys
from gridloop.contacts.store import ContactStore
from gridloop.kafka import BatchPipeline, EventProducer, Retry, ensure_topics
from schemas.envelope import Envelope, encode
from schemas.events import CaseExtended, CaseFiled, CaseReported, Reporter
from schemas.topics import Topic, dead_letter_topic
from services.notify.service import Notify
from tests.conftest import Servers
from tests.helpers import eventually
from tests.integration.notify_world import CC, World, dispatched, open_world
from tests.samples import sample_of


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[World]:
    async with open_world(servers) as found:
        yield found


def poll_of_five() -> list[Envelope]:
    """Four cases: a joint dispatch (two departments), a dispatch and its extension, two
    plain dispatches; six deliveries in all."""
    joint, extended = dispatched("WATER", ["SANITATION"]), dispatched()
    later = CaseExtended(
        case_id=extended.data.case_id,
        version=4,
        actor=CC,
        deadline=extended.time + timedelta(days=2),
    )
    return [joint, extended, Envelope(later, "/tests"), dispatched("ROADS"), dispatched()]


async def project_all(world: World, envs: list[Envelope]) -> None:
    """Each case once, the joint one led by WATER."""
    leads = {env.data.case_id: "SANITATION" for env in envs} | {envs[0].data.case_id: "WATER"}
    newest: dict[str, int] = {}
    for env in envs:
        version = getattr(env.data, "version", 3)
        newest[env.data.case_id] = max(newest.get(env.data.case_id, 3), version)
    for case_id, department in leads.items():
        await world.project(case_id, department, newest[case_id])


async def deliveries(world: World) -> dict[str, str]:
    """webhook id → case id, of every delivery."""
    return {d["_id"]: d["case_id"] async for d in world.store.deliveries.find({})}


async def test_a_poll_reads_its_cases_once_and_writes_its_deliveries_once(world: World) -> None:
    envs = poll_of_five()
    await project_all(world, envs)
    notify = Notify(world.pack, CaseReader(world.db), world.store)
    world.commands.clear()

    await notify.on_events(envs)

    assert len(world.commands.of("find", "cases")) == 1
    assert len(world.commands.of("insert", "deliveries")) == 1
    assert world.commands.of("update", "deliveries") == []
    first = await deliveries(world)
    assert len(first) == 6
    assert set(first.values()) == {env.data.case_id for env in envs}
    assert notify.wake.is_set()

    # The same poll again (a crash before the commit): nothing new, nothing doubled.
    await notify.on_events(envs)
    assert await deliveries(world) == first


async def test_a_case_not_projected_yet_holds_back_only_its_own_deliveries(world: World) -> None:
    ready, late = dispatched(), dispatched("WATER")
    await world.project(ready.data.case_id)
    notify = Notify(world.pack, CaseReader(world.db), world.store)

    with pytest.raises(Retry, match=late.data.case_id):
        await notify.on_events([ready, late])
    assert set((await deliveries(world)).values()) == {ready.data.case_id}

    await world.project(late.data.case_id, "WATER")
    await notify.on_events([ready, late])  # the pipeline handles the poll again
    handled = list((await deliveries(world)).values())
    assert sorted(handled) == sorted([ready.data.case_id, late.data.case_id])


async def test_a_poll_with_no_event_for_a_department_touches_nothing(world: World) -> None:
    filed = Envelope(sample_of(CaseFiled, case_id="C-unknown"), "/tests")
    notify = Notify(world.pack, CaseReader(world.db), world.store)
    world.commands.clear()
    await notify.on_events([filed])
    assert world.commands.seen == []
    assert not notify.wake.is_set()


async def test_the_consumer_reads_a_topic_a_poll_at_a_time(world: World, servers: Servers) -> None:
    """Through Kafka, as the service runs it: events sent before it starts come in one or a
    few polls, each one case read, and every delivery is made once."""
    topic = f"it-{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        servers.kafka, [Topic(topic, "test", 1), Topic(dead_letter_topic(topic), "test", 1)]
    )
    envs = poll_of_five()
    await project_all(world, envs)
    notify = Notify(world.pack, CaseReader(world.db), world.store)
    producer = EventProducer(servers.kafka)
    await producer.start()
    try:
        for env in envs:
            await producer.send_raw(topic, *encode(env))
        world.commands.clear()
        pipeline = BatchPipeline(
            f"g-{topic}", [topic], notify.on_event, notify.on_events, producer, servers.kafka
        )
        stop = asyncio.Event()
        running = asyncio.create_task(pipeline.run(stop))
        try:
            await eventually(lambda: _count(world, 6), what="six deliveries")
        finally:
            stop.set()
            await running
    finally:
        await producer.stop()
    assert len(world.commands.of("find", "cases")) < len(envs)  # not one per event
    assert len(await deliveries(world)) == 6


async def _count(world: World, n: int) -> bool:
    return await world.store.deliveries.count_documents({}) >= n


async def test_a_case_reported_without_a_contact_is_not_read_for_its_reporter(
    world: World,
) -> None:
    """Its filing concerns no department, and it has no reporter to tell: no case read (a
    patrolling supervisor's finding). A caller who left a contact is read for."""
    notify = Notify(
        world.pack,
        CaseReader(world.db),
        world.store,
        contacts=ContactStore(world.db, MasterKeys.ephemeral()),
    )
    found, called = "C-found", "C-called"
    await world.project(found, version=2)
    await world.project(called, version=2)
    world.commands.clear()

    await notify.on_events(_reported_and_filed(found, Reporter(id="supervisor-7")))
    assert world.commands.of("find", "cases") == []

    await notify.on_events(_reported_and_filed(called, Reporter(contact="ct_" + "1" * 32)))
    assert len(world.commands.of("find", "cases")) == 1

    # A later event of the case (here its filing again) is not read for either.
    await notify.on_events(_reported_and_filed(found, Reporter(id="supervisor-7"))[1:])
    assert len(world.commands.of("find", "cases")) == 1


def _reported_and_filed(case_id: str, reporter: Reporter) -> list[Envelope]:
    reported = sample_of(CaseReported, case_id=case_id, reporter=reporter)
    return [Envelope(reported, "/tests"), Envelope(sample_of(CaseFiled, case_id=case_id), "/tests")]
