"""A case's way from intake to its score, in this process on the real broker and database:
intake's API, the projection, evaluation (and dispatch's consumer, when asked) on a
namespace and database of one test alone. Shared by the tests of answering directly and of
self-handling, which both open and end a case at intake and then read its score."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import ConsumerRecord
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.auth import CredentialStore
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.kafka import EventProducer, Pipeline, ensure_topics
from gridloop.mongo import Document
from gridloop.people import People
from schemas.envelope import Envelope, decode
from schemas.topics import LIFECYCLE_TOPICS
from services.dispatch.handlers import Dispatch
from services.dispatch.main import consumer as dispatch_consumer
from services.evaluation.api import create_app as evaluation_app
from services.evaluation.main import recompute
from services.evaluation.store import ScoreStore
from services.intake.api import Intake, create_app, follow_key
from services.projections.store import CaseStore
from tests.conftest import Servers, fresh_namespace
from tests.helpers import eventually, read_topic

# Who the test acts as: a name → a bearer token, issued on the world's database.
Tokens = Callable[[CredentialStore, People], Awaitable[dict[str, str]]]
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"


@dataclass
class ScoringWorld:
    intake: httpx.AsyncClient
    scores: httpx.AsyncClient
    tokens: dict[str, str]
    producer: EventProducer
    store: ScoreStore
    db: AsyncDatabase[Document]
    kafka: str
    namespace: str

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def score(self, path: str) -> Any:
        """`GET` an evaluation route (as `command`) once the scores caught up with every
        event read."""
        await eventually(self._settled, what="scores recomputed")
        answer = await self.scores.get(path, headers=self.auth("command"))
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def scored(self, level: str, period: str, entities: int = 1) -> bool:
        """Whether `level` has scores of at least `entities` for `period`."""
        answer = await self.scores.get(
            "/scores", params={"level": level, "period": period}, headers=self.auth("command")
        )
        return answer.status_code == 200 and len(answer.json()) >= entities

    async def _settled(self) -> bool:
        return await self.store.pending() == 0

    async def records(self, topic: str, until: Any) -> list[ConsumerRecord[bytes, bytes]]:
        return await read_topic(self.kafka, f"{self.namespace}.{topic}", until)

    async def upload(self, content: bytes, who: str = "supervisor") -> str:
        """A photo stored at intake (its media id)."""
        stored = await self.intake.post(
            "/media",
            files={"file": ("photo.jpg", JPEG + content, "image/jpeg")},
            headers=self.auth(who),
        )
        assert stored.status_code == 201, stored.text
        media_id: str = stored.json()["media_id"]
        return media_id


def case_events(records: list[ConsumerRecord[bytes, bytes]], case_id: str) -> list[Envelope]:
    """The events of one case among `records`."""
    return [decode(r.value, r.headers) for r in records if r.key == case_id.encode()]


@contextlib.asynccontextmanager
async def scoring_world(
    servers: Servers, tokens: Tokens, dispatching: bool = True
) -> AsyncIterator[ScoringWorld]:
    namespace = fresh_namespace()
    await ensure_topics(servers.kafka, namespace=namespace)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    producer = EventProducer(servers.kafka, namespace=namespace)
    await producer.start()
    pack = load_city_pack(DEMO_CITY_PACK)
    cases, store = CaseStore(db), ScoreStore(db, pack)
    await cases.create_indexes()
    await store.create_indexes()

    async def project(env: Envelope) -> Sequence[Envelope]:
        await cases.apply(env)
        return ()

    async def evaluate(env: Envelope) -> Sequence[Envelope]:
        await store.add(env)
        return ()

    topics, tag = [t.name for t in LIFECYCLE_TOPICS], uuid.uuid4().hex[:8]
    stop = asyncio.Event()
    workers = [
        Pipeline(f"projections-{tag}", topics, project, producer, servers.kafka, 6000).run(stop),
        Pipeline(f"evaluation-{tag}", topics, evaluate, producer, servers.kafka, 6000).run(stop),
        recompute(store, stop),
    ]
    if dispatching:
        dispatch = Dispatch.on(pack, db, producer)
        workers.append(
            dispatch_consumer(dispatch, producer, servers.kafka, 6000, f"d-{tag}").run(stop)
        )
    running = [asyncio.create_task(w) for w in workers]
    credentials = CredentialStore(db)
    issued = await tokens(credentials, People(db))
    intake = Intake(pack, producer, db, await follow_key(db))
    intake_http = httpx.ASGITransport(app=create_app(intake))
    scores_http = httpx.ASGITransport(app=evaluation_app(store, credentials))
    async with (
        httpx.AsyncClient(transport=intake_http, base_url="http://intake") as intake_api,
        httpx.AsyncClient(transport=scores_http, base_url="http://evaluation") as scores_api,
    ):
        yield ScoringWorld(
            intake_api, scores_api, issued, producer, store, db, servers.kafka, namespace
        )
    stop.set()
    await asyncio.gather(*running)
    await producer.stop()
    await mongo.drop_database(db.name)
    await mongo.close()
