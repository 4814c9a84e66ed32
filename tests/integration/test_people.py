"""People who sign in to the workbench, on a real database: passwords (Argon2id), sessions
that open the API like a credential and close at sign-out, and failed sign-ins throttled."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from gridloop.access import Principal, Role
from gridloop.auth import CredentialStore
from gridloop.mongo import Document
from gridloop.refusal import Refused, Why
from services.console.throttle import Throttle
from tests.conftest import Servers

PASSWORD = "a long passphrase"


@pytest.fixture
async def store(servers: Servers) -> AsyncIterator[CredentialStore]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    store = CredentialStore(client[f"test_{uuid.uuid4().hex[:12]}"])
    await store.people.add("wang.li", PASSWORD, Role.department, "ROADS", "王力")
    yield store
    await client.close()


async def test_a_session_opens_the_api_as_the_person_and_closes_at_sign_out(
    store: CredentialStore,
) -> None:
    session = await store.people.sign_in("wang.li", PASSWORD)
    assert session is not None and session.token.startswith("gls_")
    who = Principal(Role.department, "ROADS", "wang.li")
    assert session.principal == who
    assert await store.principal(session.token) == who  # what every service checks
    stored = await store.people.sessions.find_one()
    assert stored is not None and session.token not in str(stored)  # only its digest
    await store.people.sign_out(session.token)
    assert await store.principal(session.token) is None


async def test_a_wrong_password_an_unknown_person_and_a_disabled_one_are_refused_alike(
    store: CredentialStore,
) -> None:
    assert await store.people.sign_in("wang.li", "not the passphrase") is None
    assert await store.people.sign_in("nobody", PASSWORD) is None
    session = await store.people.sign_in("wang.li", PASSWORD)
    assert session is not None
    assert await store.people.disable("wang.li")
    assert await store.people.sign_in("wang.li", PASSWORD) is None
    assert await store.principal(session.token) is None  # signed out everywhere


async def test_the_password_is_stored_as_an_argon2id_hash(store: CredentialStore) -> None:
    doc = await store.people.people.find_one({"_id": "wang.li"})
    assert doc is not None and doc["hash"].startswith("$argon2id$")
    assert PASSWORD not in str(doc)


async def test_an_expired_session_is_no_session(store: CredentialStore) -> None:
    session = await store.people.sign_in("wang.li", PASSWORD)
    assert session is not None
    past = datetime.now(UTC) - timedelta(seconds=1)
    await store.people.sessions.update_many({}, {"$set": {"expires": past}})
    assert await store.principal(session.token) is None


async def test_a_taken_username_and_a_short_password_are_refused_with_the_field(
    store: CredentialStore,
) -> None:
    with pytest.raises(Refused) as taken:
        await store.people.add("wang.li", PASSWORD, Role.department, "WATER")
    assert (taken.value.why, taken.value.loc) == (Why.conflict, ("body", "username"))
    with pytest.raises(Refused) as short:
        await store.people.add("li.na", "short", Role.department, "WATER")
    assert (short.value.why, short.value.loc) == (Why.invalid, ("body", "password"))
    assert await store.people.people.count_documents({}) == 1


async def test_failed_sign_ins_are_throttled_by_person_and_by_address() -> None:
    throttle = Throttle(per_person="3/15minutes", per_address="5/15minutes")
    for _ in range(3):
        assert await throttle.allowed("wang.li", "10.0.0.1")
        await throttle.failed("wang.li", "10.0.0.1")
    assert not await throttle.allowed("wang.li", "10.0.0.2")  # that person, from anywhere
    assert await throttle.allowed("li.na", "10.0.0.2")
    for name in ("a", "b"):
        await throttle.failed(name, "10.0.0.1")
    assert not await throttle.allowed("li.na", "10.0.0.1")  # anyone, from that address
