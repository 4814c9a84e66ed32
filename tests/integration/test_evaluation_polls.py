"""The evaluation service's consumer (`BatchPipeline` with `ScoreStore.apply_many`) applies a
poll at once; a poll with a record that cannot be read falls back to record by record,
which dead-letters that one and scores the others."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from aiokafka import ConsumerRecord
from pymongo import AsyncMongoClient

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.kafka import BatchPipeline, EventProducer, ensure_topics
from gridloop.mongo import Document
from schemas.envelope import Envelope, encode
from schemas.topics import Topic, dead_letter_topic
from services.evaluation.store import ScoreStore
from tests.conftest import Servers
from tests.evaluation_story import Story
from tests.helpers import eventually, read_topic


class World:
    def __init__(self, servers: Servers, producer: EventProducer) -> None:
        self.servers, self.producer = servers, producer
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
        self.database = f"test_{uuid.uuid4().hex[:12]}"
        self.store = ScoreStore(self.client[self.database], load_city_pack(DEMO_CITY_PACK))
        self.topic = f"it-{uuid.uuid4().hex[:8]}"
        self.one_by_one = 0  # envelopes that went the record-by-record way

    async def evaluate(self, env: Envelope) -> Sequence[Envelope]:
        self.one_by_one += 1
        await self.store.add(env)
        return ()

    async def send(self, *envs: Envelope) -> None:
        for env in envs:
            key, value, headers = encode(env)
            await self.producer.send_raw(self.topic, key, value, headers)

    async def folded(self, story: Story) -> Document | None:
        doc = await self.store.case_facts.find_one({"_id": story.case_id})
        return doc if doc is not None and doc.get("folded") == len(story.events) else None

    async def run_until_folded(self, story: Story) -> Document:
        pipeline = BatchPipeline(
            f"g-{self.topic}",
            [self.topic],
            self.evaluate,
            self.store.apply_many,
            self.producer,
            self.servers.kafka,
            6000,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(pipeline.run(stop))
        try:
            return await eventually(lambda: self.folded(story), what="every event folded")
        finally:
            stop.set()
            await task


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[World]:
    producer = EventProducer(servers.kafka)
    await producer.start()
    w = World(servers, producer)
    await ensure_topics(
        servers.kafka, [Topic(w.topic, "test", 1), Topic(dead_letter_topic(w.topic), "test", 1)]
    )
    await w.store.create_indexes()
    try:
        yield w
    finally:
        await producer.stop()
        await w.client.drop_database(w.database)
        await w.client.close()


def story() -> Story:
    case_id = f"EP-{uuid.uuid4().hex[:8]}"
    return Story(case_id).reported().filed().dispatched().acknowledged().done(rating=5)


async def test_a_poll_is_applied_at_once(world: World) -> None:
    case = story()
    events = case.events
    await world.send(*reversed(events), events[0])  # out of order, one twice
    doc = await world.run_until_folded(case)
    log = await world.store.case_events.find_one({"_id": case.case_id})
    assert log is not None and sorted(e["id"] for e in log["events"]) == sorted(
        e.id for e in events
    )
    assert doc["facts"]["state"] == "evaluated" and doc["dirty"] > 0  # scores to recompute
    assert world.one_by_one == 0  # nothing went the slow way


async def test_an_unreadable_record_is_dead_lettered_and_the_rest_applied(world: World) -> None:
    case = story()
    await world.send(*case.events[:3])
    await world.producer.send_raw(world.topic, b"bad", b"{not json", [("ce_type", b"x")])
    await world.send(*case.events[3:])
    doc = await world.run_until_folded(case)
    assert doc["facts"]["rating"] == 5

    def one(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return len(records) >= 1

    dead = await read_topic(world.servers.kafka, dead_letter_topic(world.topic), one)
    assert [r.key for r in dead] == [b"bad"]
