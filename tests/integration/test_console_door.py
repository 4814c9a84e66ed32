"""The console's sign-in throttle and audit name the caller's address by the door's rule
(`gridloop.http.client_address`): a trusted proxy's `X-Forwarded-For`, else the peer.
uvicorn's own proxy-header handling is off wherever a service is served, so the console
reads the header itself, from `GRIDLOOP_TRUSTED_PROXIES` only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.audit import AuditTrail
from gridloop.cases.reader import CaseReader
from gridloop.mongo import Document
from gridloop.people import People
from services.console.app import LOGIN, Console, create_app
from services.console.live import Live
from services.console.throttle import Throttle
from tests.conftest import Servers


@pytest.fixture
async def db(servers: Servers) -> AsyncIterator[AsyncDatabase[Document]]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    yield mongo[f"test_{uuid.uuid4().hex[:12]}"]
    await mongo.close()


async def refused_from(db: AsyncDatabase[Document], peer: str, forwarded: str) -> str:
    """Sign in with a wrong password from `peer` naming `forwarded`; the address the audit
    trail recorded for the refusal."""
    reader = CaseReader(db)
    console = Console(
        People(db),
        reader,
        AuditTrail(db),
        "http://127.0.0.1:1",
        Throttle(),
        Live(reader),
        trusted_proxies="10.0.0.0/8",
    )
    transport = httpx.ASGITransport(app=create_app(console), client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        answer = await http.post(
            "/login",
            data={"username": "nobody", "password": "not the password", "csrf": "n0nce"},
            headers={"Cookie": f"{LOGIN}=n0nce", "X-Forwarded-For": forwarded},
        )
    assert answer.status_code == 401, answer.text
    [record] = [d async for d in db["audit"].find({"action": "sign-in refused"})]
    await db["audit"].delete_many({})
    return str(record["address"])


async def test_a_trusted_proxy_names_the_client(db: AsyncDatabase[Document]) -> None:
    assert await refused_from(db, "10.0.0.5", "203.0.113.7") == "203.0.113.7"


async def test_anyone_else_is_its_own_address(db: AsyncDatabase[Document]) -> None:
    assert await refused_from(db, "198.51.100.9", "203.0.113.8") == "198.51.100.9"
