"""A grid service in process on the real servers (its own database and namespace), with a
token for every role and for named people, and a reader of its topic."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient

from gridloop.auth import CredentialStore, Role
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.http import HttpLimits
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.mongo import Document
from gridloop.topology import named
from schemas.envelope import Envelope, decode
from services.grid.api import create_app
from services.grid.patrolling import Patrols
from services.grid.patrols import PatrolStore
from services.grid.service import GridService
from services.grid.store import GridStore
from tests.conftest import Servers, fresh_namespace

ROOMY = HttpLimits(public_rate="10000/minute")
G1, G2 = "110101001001001", "110101001001002"
IN_G1 = {"lon": 116.4005, "lat": 39.9204}
IN_G2 = {"lon": 116.4015, "lat": 39.9204}
NOWHERE = {"lon": 116.5, "lat": 39.95}


@dataclass
class GridWorld:
    http: httpx.AsyncClient
    credentials: CredentialStore
    kafka: str
    namespace: str

    async def token(self, role: Role, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.credentials.issue(role, subject)}"}

    async def events(self) -> list[Envelope]:
        """Every record on this world's `grid` topic, to its end."""
        topic = named(self.namespace, "grid")
        consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            consumer.assign(parts)
            await consumer.seek_to_beginning()
            ends = await consumer.end_offsets(parts)
            found: list[Envelope] = []
            while [p for p, end in ends.items() if await consumer.position(p) < end]:
                batch = await consumer.getmany(timeout_ms=200)
                found += [decode(r.value, r.headers) for recs in batch.values() for r in recs]
            return found
        finally:
            await consumer.stop()


@asynccontextmanager
async def grid_world(servers: Servers, pack_dir: Path = DEMO_CITY_PACK) -> AsyncIterator[GridWorld]:
    namespace = fresh_namespace("g")
    await ensure_topics(servers.kafka, namespace=namespace)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    producer = EventProducer(servers.kafka, "grid-test", namespace)
    await producer.start()
    pack = load_city_pack(pack_dir)
    store, patrols = GridStore(db), PatrolStore(db)
    await store.create_indexes()
    await patrols.create_indexes()
    await store.seed(pack)
    service = GridService(pack, store, producer)
    credentials = CredentialStore(db)
    app = create_app(service, credentials, ROOMY, parts={"patrols": Patrols(service, patrols)})
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    try:
        yield GridWorld(http, credentials, servers.kafka, namespace)
    finally:
        await http.aclose()
        await producer.stop()
        await mongo.close()
