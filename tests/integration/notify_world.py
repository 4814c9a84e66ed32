"""What the notify batch tests share: a database whose commands are counted as the server
receives them (pymongo's command monitoring, no stand-ins), projected cases, dispatched
events, and a department receiver that can hold its answers until several requests wait."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI, Request, Response
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.embedded import free_port
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import Actor, CaseDispatched
from schemas.events import Role as ActorRole
from services.notify.store import DeliveryStore
from services.projections.store import CaseStore
from tests.conftest import Servers
from tests.helpers import serving

CC = Actor(role=ActorRole.command_centre, id="auto-dispatch")


class Commands(CommandListener):
    """Every command the client sends, as (name, collection, command)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Document]] = []

    def started(self, event: CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        if isinstance(target, str):
            self.seen.append((event.command_name, target, dict(event.command)))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass

    def of(self, name: str, collection: str) -> list[Document]:
        return [c for n, coll, c in self.seen if (n, coll) == (name, collection)]

    def clear(self) -> None:
        self.seen.clear()


@dataclass
class World:
    db: AsyncDatabase[Document]
    commands: Commands
    pack: CityPack
    cases: CaseStore
    store: DeliveryStore

    async def project(self, case_id: str, department: str = "SANITATION", version: int = 3) -> None:
        """A minimal projected case, as notify reads it (notify waits for a projection
        behind its event: `version` is the newest the case's events name)."""
        await self.db["cases"].insert_one(
            {
                "_id": case_id,
                "state": "dispatched",
                "version": version,
                "department": department,
                "kind": "event",
                "class_code": "0102",
                "description": "暴露垃圾",
            }
        )


@contextlib.asynccontextmanager
async def open_world(servers: Servers) -> AsyncIterator[World]:
    """A fresh database, its commands counted from after the indexes are made."""
    commands = Commands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        servers.mongodb, tz_aware=True, event_listeners=[commands]
    )
    db = client[f"test_{uuid.uuid4().hex[:12]}"]
    store = DeliveryStore(db)
    await store.create_indexes()
    commands.clear()
    yield World(db, commands, load_city_pack(DEMO_CITY_PACK), CaseStore(db), store)
    await client.close()


def dispatched(department: str = "SANITATION", assisting: list[str] | None = None) -> Envelope:
    event = CaseDispatched(
        case_id=f"C-{uuid.uuid4().hex[:10]}",
        version=3,
        actor=CC,
        department=department,
        assisting=assisting or [],
        deadline=datetime.now(UTC) + timedelta(hours=4),
        rule="test",
    )
    return Envelope(event, "/tests")


@dataclass
class Receiver:
    """Answers 204 to every webhook; while `hold` is above zero, holds each answer until
    `hold` requests are waiting, then answers them all at once."""

    port: int = field(default_factory=free_port)
    hold: int = 0
    requests: list[str] = field(default_factory=list)  # webhook ids, as they came
    _full: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, department: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{department}"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/{department}")
        async def receive(department: str, request: Request) -> Response:
            self.requests.append(request.headers["webhook-id"])
            if self.hold:
                if len(self.requests) >= self.hold:
                    self._full.set()
                await self._full.wait()
            return Response(status_code=204)

        return app


@contextlib.asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    found = Receiver()
    async with serving(found.app(), found.port):
        yield found


async def point_at(world: World, receiver: Receiver, *departments: str) -> None:
    """Each department's webhook at the receiver (as the admin API sets it)."""
    for code in departments:
        await world.store.set_webhook(world.pack, code, receiver.url(code), timedelta(0))


async def attempts_logged(store: DeliveryStore, query: Document | None = None) -> int:
    """The attempts logged in the deliveries matching `query` (each delivery's log)."""
    found = store.deliveries.find(query or {}, {"attempt_log": 1})
    return sum([len(d.get("attempt_log", [])) async for d in found])
