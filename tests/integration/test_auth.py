"""Credentials and role checks on a real database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from pymongo import AsyncMongoClient

from gridloop.auth import CredentialStore, Principal, Role, require
from gridloop.errors import install_error_handlers
from gridloop.mongo import Document
from tests.conftest import Servers


@pytest.fixture
async def store(servers: Servers) -> AsyncIterator[CredentialStore]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    yield CredentialStore(client[f"test_{uuid.uuid4().hex[:12]}"])
    await client.close()


def app_with(store: CredentialStore) -> FastAPI:
    app = FastAPI()
    app.state.credentials = store
    install_error_handlers(app)

    @app.get("/supervisors")
    async def supervisors(who: Annotated[Principal, Depends(require(Role.supervisor))]) -> str:
        return who.subject

    @app.get("/anyone")
    async def anyone(who: Annotated[Principal, Depends(require(Role.public))]) -> str:
        return who.role.value

    return app


async def test_roles_tokens_and_revocation(store: CredentialStore) -> None:
    supervisor = await store.issue(Role.supervisor, "SUP-1")
    department = await store.issue(Role.department, "WATER")
    transport = httpx.ASGITransport(app=app_with(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:

        async def get(path: str, token: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await http.get(path, headers=headers)

        assert (await get("/supervisors", supervisor)).json() == "SUP-1"
        missing = await get("/supervisors", None)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong_role = await get("/supervisors", department)
        assert wrong_role.status_code == 403
        assert "allowed: supervisor" in wrong_role.json()["detail"][0]["msg"]
        assert (await get("/supervisors", "glk_forged")).status_code == 401
        assert (await get("/anyone", None)).json() == "public"
        assert (await get("/anyone", department)).json() == "department"

        assert await store.revoke("SUP-1") == 1
        assert (await get("/supervisors", supervisor)).status_code == 401


async def test_only_the_hash_of_a_token_is_stored(store: CredentialStore) -> None:
    token = await store.issue(Role.admin, "ops")
    doc = await store.credentials.find_one({"subject": "ops"})
    assert doc is not None
    assert token not in str(doc)
    assert token.startswith("glk_")
