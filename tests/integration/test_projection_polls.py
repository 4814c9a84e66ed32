"""The projections service's consumer projects a poll at once; a poll with a record that
cannot be handled falls back to record by record, which dead-letters that one."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from aiokafka import ConsumerRecord
from pymongo import AsyncMongoClient

from gridloop.audit import AuditTrail
from gridloop.kafka import BatchPipeline, EventProducer, ensure_topics
from gridloop.mongo import Document
from schemas.envelope import Envelope, encode
from schemas.topics import Topic, dead_letter_topic
from services.projections.main import project_many
from services.projections.store import CaseStore
from tests.conftest import Servers
from tests.helpers import eventually, read_topic
from tests.samples import reported_to_dispatched


class Fallback:
    """The record-by-record handler: counts what reaches it."""

    def __init__(self, store: CaseStore) -> None:
        self.store, self.seen = store, 0

    async def __call__(self, env: Envelope) -> Sequence[Envelope]:
        self.seen += 1
        await self.store.apply(env)
        return ()


class World:
    def __init__(self, servers: Servers, producer: EventProducer, db_name: str) -> None:
        self.servers, self.producer = servers, producer
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
        db = self.client[db_name]
        self.store, self.trail = CaseStore(db), AuditTrail(db)
        self.topic = f"it-{uuid.uuid4().hex[:8]}"
        self.fallback = Fallback(self.store)

    async def send(self, *envs: Envelope) -> None:
        for env in envs:
            key, value, headers = encode(env)
            await self.producer.send_raw(self.topic, key, value, headers)

    async def projected(self, case_id: str, state: str) -> Document | None:
        doc = await self.store.get(case_id)
        return doc if doc is not None and doc["state"] == state else None

    def pipeline(self) -> BatchPipeline:
        return BatchPipeline(
            f"g-{self.topic}",
            [self.topic],
            self.fallback,
            functools.partial(project_many, self.store, self.trail),
            self.producer,
            self.servers.kafka,
            6000,
        )


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[World]:
    producer = EventProducer(servers.kafka)
    await producer.start()
    w = World(servers, producer, f"test_{uuid.uuid4().hex[:12]}")
    await ensure_topics(
        servers.kafka, [Topic(w.topic, "test", 1), Topic(dead_letter_topic(w.topic), "test", 1)]
    )
    yield w
    await producer.stop()
    await w.client.close()


async def running(world: World, until: str, state: str) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(world.pipeline().run(stop))
    try:
        await eventually(lambda: world.projected(until, state), what=f"{until} {state}")
    finally:
        stop.set()
        await task


async def test_a_poll_is_projected_and_audited_at_once(world: World) -> None:
    a, b = reported_to_dispatched("case-a"), reported_to_dispatched("case-b")
    await world.send(a[0], b[0], a[1], a[0], b[1], a[2], b[2], a[1])  # with repeats
    await running(world, "case-b", "dispatched")
    doc = await world.projected("case-a", "dispatched")
    assert doc is not None
    assert [e["type"] for e in doc["timeline"]] == ["reported", "filed", "dispatched"]
    assert await world.trail.records.count_documents({}) == 6  # each action once
    assert world.fallback.seen == 0  # no record went the slow way


async def test_a_record_that_cannot_be_read_is_dead_lettered_and_the_rest_projected(
    world: World,
) -> None:
    a = reported_to_dispatched("case-c")
    await world.send(a[0], a[1])
    await world.producer.send_raw(world.topic, b"bad", b"{not json", [("ce_type", b"x")])
    await world.send(a[2])
    await running(world, "case-c", "dispatched")

    def one(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return len(records) >= 1

    dead = await read_topic(world.servers.kafka, dead_letter_topic(world.topic), one)
    assert [r.key for r in dead] == [b"bad"]
