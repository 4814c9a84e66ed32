"""Intake, dispatch and notify's admin API served by uvicorn on loopback, on the real
broker and database, from an event loop in a thread of its own: tests drive them
synchronously over real HTTP (schemathesis, requests), as any client would.

Every role holds a token (the department's is WATER's); two cases are seeded in the
projection, one reported and one dispatched to WATER, so commands meet real cases. Nothing
projects what the apps publish: the seeded cases stay as they are, whatever is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import requests
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.auth import CredentialStore, Role
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.http import HttpLimits
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.mongo import Document
from gridloop.runtime import server_config
from schemas.envelope import Envelope
from schemas.events import Actor, CaseDispatched, CaseFiled, CaseReported
from schemas.events import Role as ActorRole
from services.dispatch.api import create_app as dispatch_app
from services.dispatch.handlers import Dispatch
from services.intake.api import Intake, follow_key
from services.intake.api import create_app as intake_app
from services.notify.admin import create_app as notify_app
from services.notify.store import DeliveryStore
from services.projections.store import CaseStore
from tests.conftest import Servers

T = TypeVar("T")
DEPARTMENT = "WATER"  # the department credential's subject
GRID = "110101001002001"
INSIDE: dict[str, Any] = {"lon": 116.4025, "lat": 39.9205}  # a point of GRID
SUP = Actor(role=ActorRole.supervisor, id="SUP-1")
UNLIMITED = HttpLimits(public_rate="1000000/minute")


class Loop:
    """An event loop in a thread of its own: the apps' database and broker clients live
    there, whatever the test thread does."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@dataclass
class Live:
    """What tests reach: each app's base URL, a token per role, the seeded case ids."""

    urls: dict[str, str]
    tokens: dict[Role, str]
    cases: list[str]
    kafka: str
    loop: Loop | None = None
    http: requests.Session = field(default_factory=requests.Session)

    def reports(self) -> int:
        """How many records the `reports` topic holds: what intake has published."""
        assert self.loop is not None
        return self.loop.run(_records(self.kafka, "reports"))


async def _seed(cases: CaseStore) -> list[str]:
    """A website report (reported) and a supervisor's case dispatched to WATER."""
    reported, dispatched = f"C-{uuid.uuid4().hex[:12]}", f"C-{uuid.uuid4().hex[:12]}"
    common: dict[str, Any] = {
        "kind": "event",
        "class_code": "0102",
        "grid_code": GRID,
        "point": INSIDE,
        "description": "暴露垃圾",
        "actor": SUP,
        "version": 1,
    }
    events = [
        CaseReported(case_id=reported, channel="website", **common),
        CaseReported(case_id=dispatched, channel="supervisor", **common),
        CaseFiled(
            case_id=dispatched,
            version=2,
            actor=SUP,
            kind="event",
            class_code="0102",
            grid_code=GRID,
        ),
        CaseDispatched(
            case_id=dispatched,
            version=3,
            actor=Actor(role=ActorRole.command_centre, id="auto-dispatch"),
            department=DEPARTMENT,
            deadline=datetime.now(UTC) + timedelta(hours=4),
            rule="test",
        ),
    ]
    for event in events:
        await cases.apply(Envelope(event, "/tests"))
    return [reported, dispatched]


async def _records(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
        return sum(ends.values())
    finally:
        await consumer.stop()


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


async def serve_loopback(app: FastAPI, stack: contextlib.AsyncExitStack) -> str:
    """Serve `app` on a free loopback port until `stack` closes; its base URL."""
    sock = _listening()
    server = uvicorn.Server(server_config(app, log_level="critical", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.02)

    async def stop() -> None:
        server.should_exit = server.force_exit = True
        await task
        sock.close()

    stack.push_async_callback(stop)
    host, port = sock.getsockname()
    return f"http://{host}:{port}"


def apps(
    db: AsyncDatabase[Document], producer: EventProducer, key: bytes, pack: CityPack | None = None
) -> dict[str, FastAPI]:
    """The three apps on `db` (and `pack`, the demo pack by default), with a public rate
    limit no fuzzer reaches."""
    pack = pack or load_city_pack(DEMO_CITY_PACK)
    credentials, limits = CredentialStore(db), UNLIMITED
    dispatch = Dispatch.on(pack, db, producer)
    return {
        "intake": intake_app(Intake(pack, producer, db, key), limits),
        "dispatch": dispatch_app(dispatch, credentials, limits),
        "notify": notify_app(pack, DeliveryStore(db), credentials, limits),
    }


async def _up(servers: Servers, stack: contextlib.AsyncExitStack) -> Live:
    await ensure_topics(servers.kafka)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    stack.push_async_callback(mongo.close)
    db = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    producer = EventProducer(servers.kafka)
    await producer.start()
    stack.push_async_callback(producer.stop)
    credentials = CredentialStore(db)
    subjects = {Role.department: DEPARTMENT}
    tokens = {r: await credentials.issue(r, subjects.get(r, f"{r}-1")) for r in Role}
    served = apps(db, producer, await follow_key(db))
    urls = {name: await serve_loopback(app, stack) for name, app in served.items()}
    return Live(urls, tokens, await _seed(CaseStore(db)), servers.kafka)


@contextlib.contextmanager
def running(servers: Servers) -> Iterator[Live]:
    """The three apps, served until the block ends."""
    loop = Loop()
    stack = contextlib.AsyncExitStack()
    try:
        live = loop.run(_up(servers, stack))
        live.loop = loop
        yield live
    finally:
        loop.run(stack.aclose())
        loop.close()
