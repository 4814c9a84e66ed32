"""The grid service with its households and visits part, in process on the real servers
(its own database and namespace), beside the real intake app it reports findings to over
HTTP; a credential for each holder named in `HOLDERS`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.auth import CredentialStore, Role
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.http import HttpLimits
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.mongo import Document
from services.grid.api import create_app as grid_app
from services.grid.intake_client import IntakeClient
from services.grid.patrolling import Patrols
from services.grid.patrols import PatrolStore
from services.grid.service import GridService
from services.grid.store import GridStore
from services.grid.visits import Visits
from services.intake.api import Intake, follow_key
from services.intake.api import create_app as intake_app
from tests.conftest import Servers, fresh_namespace

G1, G2 = "110101001001001", "110101001001002"
ROOMY = HttpLimits(public_rate="10000/minute")
# Who holds which credential: GM-0001 works G1, GM-0002 works G2 (the demo's staff.yaml).
HOLDERS = {
    "zhao": (Role.grid_staff, "GM-0001"),
    "qian": (Role.grid_staff, "GM-0002"),
    "admin": (Role.admin, "ops"),
    "centre": (Role.supervision_centre, "centre-1"),
    "command": (Role.command_centre, "dispatcher-1"),
    "lead": (Role.shift_lead, "lead-1"),
    "supervisor": (Role.supervisor, "SUP-0001"),
    "department": (Role.department, "WATER"),
}


@dataclass
class VisitsWorld:
    grid: httpx.AsyncClient
    db: AsyncDatabase[Document]
    kafka: str
    namespace: str
    pack: CityPack
    credentials: CredentialStore
    tokens: dict[str, str]
    service: GridService

    def auth(self, who: str, key: str | None = None) -> dict[str, str]:
        found = {"Authorization": f"Bearer {self.tokens[who]}"}
        return found | ({"Idempotency-Key": key} if key else {})

    async def get(self, path: str, who: str, **params: str) -> httpx.Response:
        return await self.grid.get(path, headers=self.auth(who), params=params)

    async def post(self, path: str, body: Any, who: str, key: str | None = None) -> httpx.Response:
        return await self.grid.post(path, json=body, headers=self.auth(who, key))

    async def doors(self, grid: str, who: str = "admin") -> list[dict[str, Any]]:
        answer = await self.get(f"/grids/{grid}/households", who)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found


@asynccontextmanager
async def visits_world(
    servers: Servers, pack_dir: Path = DEMO_CITY_PACK
) -> AsyncIterator[VisitsWorld]:
    namespace = fresh_namespace("v")
    await ensure_topics(servers.kafka, namespace=namespace)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    producer = EventProducer(servers.kafka, "visits-test", namespace)
    await producer.start()
    pack = load_city_pack(pack_dir)
    credentials = CredentialStore(db)
    tokens = {name: await credentials.issue(r, s) for name, (r, s) in HOLDERS.items()}
    intake = intake_app(Intake(pack, producer, db, await follow_key(db)), ROOMY)
    store = GridStore(db)
    await store.seed(pack)
    service = GridService(pack, store, producer)
    to_intake = IntakeClient("http://intake", transport=httpx.ASGITransport(app=intake))
    parts = {
        "patrols": Patrols(service, PatrolStore(db)),
        "visits": await Visits.build(service, db, to_intake),
    }
    app = grid_app(service, credentials, ROOMY, parts=parts)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://grid")
    try:
        yield VisitsWorld(http, db, servers.kafka, namespace, pack, credentials, tokens, service)
    finally:
        await http.aclose()
        await producer.stop()
        await mongo.close()
