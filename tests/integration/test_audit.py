"""The audit trail (`gridloop/audit.py`): every accepted action from the event log, once,
the same after a rebuild; every refused attempt and every read of a reporter's name or
phone from the HTTP layer; read back through `GET /audit` and `gridloop audit`, with no
personal data and no token in any record."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from typer.testing import CliRunner

from gridloop.audit import AuditTrail, refusal
from gridloop.auth import CredentialStore, Role
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.contacts import Contact, MasterKeys, contact_id
from gridloop.contacts.store import ContactStore
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import Actor
from schemas.events import Role as ActorRole
from services.dispatch.api import create_app as dispatch_app
from services.dispatch.handlers import Dispatch
from services.intake.api import Intake, follow_key
from services.intake.api import create_app as intake_app
from services.projections.audit import audit_record
from services.projections.main import audit, rebuild
from services.projections.store import CaseStore
from system.cli import app as cli
from tests.conftest import Servers
from tests.samples import TIME, sample

NAME, PHONE = "张伟", "13800000000"  # the reporter of tests.samples' report
KEYS = MasterKeys.ephemeral()  # intake's contact keys
COMMAND = Actor(role=ActorRole.command_centre, id="auto-dispatch")
CREW = Actor(role=ActorRole.department, id="WATER/crew-1")


def story(case_id: str) -> list[Envelope]:
    """A case's events: reported (with a name and phone), filed, dispatched, an SLA warning,
    acknowledged by the department."""
    centre, command = Actor(role=ActorRole.supervision_centre, id="centre-1"), COMMAND
    steps = [
        sample("gridloop.case.reported", case_id=case_id),
        sample("gridloop.case.filed", case_id=case_id, version=2, actor=centre),
        sample(
            "gridloop.case.dispatched",
            case_id=case_id,
            version=3,
            actor=command,
            department="WATER",
        ),
        sample("gridloop.sla.warning", case_id=case_id, case_version=3),
        sample("gridloop.case.acknowledged", case_id=case_id, case_version=3, actor=CREW),
    ]
    return [
        Envelope(e, "/gridloop/tests", TIME + timedelta(minutes=i)) for i, e in enumerate(steps)
    ]


@dataclass
class World:
    db: Any
    trail: AuditTrail
    intake: httpx.AsyncClient
    dispatch: httpx.AsyncClient
    tokens: dict[Role, str]
    producer: EventProducer
    database: str

    def bearer(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def records(self, **query: Any) -> list[Document]:
        return [d async for d in self.trail.records.find(query)]


SUBJECTS = {Role.department: "WATER"}


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[World]:
    await ensure_topics(servers.kafka)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    name = f"test_{uuid.uuid4().hex[:12]}"
    db = mongo[name]
    producer = EventProducer(servers.kafka)
    await producer.start()
    pack = load_city_pack(DEMO_CITY_PACK)
    credentials = CredentialStore(db)
    tokens = {r: await credentials.issue(r, SUBJECTS.get(r, f"{r}-1")) for r in Role}
    intake = Intake(pack, producer, db, await follow_key(db), contact_keys=KEYS)
    dispatch = Dispatch.on(pack, db, producer)
    apps = [intake_app(intake), dispatch_app(dispatch, credentials)]
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://t") for a in apps
    ]
    trail = AuditTrail(db)
    await trail.create_indexes()
    yield World(db, trail, clients[0], clients[1], tokens, producer, name)
    for client in clients:
        await client.aclose()
    await producer.stop()
    await mongo.close()


# --- actions, from the event log ------------------------------------------------------------


def test_an_action_record_holds_who_what_when_and_why_but_no_personal_data() -> None:
    [reported, filed, _, warning, acknowledged] = story("C-a")
    record = audit_record(filed)
    assert record == {
        "_id": filed.id,
        "kind": "action",
        "at": filed.time,
        "service": "tests",
        "actor": {"role": "supervision_centre", "id": "centre-1"},
        "action": "gridloop.case.filed",
        "case_id": "C-a",
        "case_version": 2,
        "reason": None,
    }
    assert audit_record(warning) is None  # a clock's fact, no one's action
    assert audit_record(acknowledged)["actor"] == {"role": "department", "id": "WATER/crew-1"}  # type: ignore[index]
    assert NAME not in str(audit_record(reported)) and PHONE not in str(audit_record(reported))


async def test_every_action_is_recorded_once_however_often_it_arrives(world: World) -> None:
    case_id = f"C-{uuid.uuid4().hex[:8]}"
    for env in story(case_id) + story(case_id):  # delivered twice: a redelivery
        await audit(world.trail, env)
    trail = await world.trail.find(case_id=case_id)
    assert [r["action"].rsplit(".", 1)[-1] for r in trail] == [
        "reported",
        "filed",
        "dispatched",
        "acknowledged",
    ]


async def test_a_rebuild_from_the_topics_gives_the_same_trail(
    world: World, servers: Servers
) -> None:
    case_id = f"C-{uuid.uuid4().hex[:8]}"
    events = story(case_id)
    await world.producer.publish(events)
    for env in events:  # what the projections service wrote as they came
        await audit(world.trail, env)
    live = await world.trail.find(case_id=case_id)
    settings = servers.settings(mongodb_database=world.database)
    await rebuild(settings)
    await rebuild(settings)  # twice: still once each
    assert await world.trail.find(case_id=case_id) == live


# --- refusals and reads, from the HTTP layer ------------------------------------------------


async def test_refused_attempts_are_recorded_with_who_but_no_token(world: World) -> None:
    assert (await world.intake.get("/cases/C-x")).status_code == 401
    as_water = world.bearer(Role.department)
    assert (
        await world.intake.post("/cases/C-x/file", json={}, headers=as_water)
    ).status_code == 403
    path = "/departments/SANITATION/cases/C-x/handled"
    answer = await world.dispatch.post(path, json={"handler_id": "crew-1"}, headers=as_water)
    assert answer.status_code == 403
    trail = await world.trail.find(case_id="C-x")
    water = {"role": "department", "id": "WATER"}
    handled = "POST /departments/{department}/cases/{case_id}/handled"
    assert [(r["service"], r["status"], r["action"], r["actor"], r["reason"]) for r in trail] == [
        ("intake", 401, "GET /cases/{case_id}", {"role": None, "id": None}, "no token"),
        ("intake", 403, "POST /cases/{case_id}/file", water, "forbidden"),
        ("dispatch", 403, handled, water, "forbidden"),
    ]
    assert world.tokens[Role.department] not in str(await world.records())


async def test_an_allowed_request_leaves_no_refusal(world: World) -> None:
    headers = world.bearer(Role.supervision_centre)
    assert (await world.intake.get("/tasks/filing", headers=headers)).status_code == 200
    assert await world.records(kind="refused") == []


async def test_reads_of_a_reporter_s_name_and_phone_are_recorded(world: World) -> None:
    case_id = f"C-{uuid.uuid4().hex[:8]}"
    for env in story(case_id)[:3]:
        await CaseStore(world.db).apply(env)
    # The sample is an event from before contacts left the log: the projection dropped the
    # name and phone; here `gridloop contacts migrate` has kept them in the contact store.
    contact = Contact(name=NAME, phone=PHONE)
    await ContactStore(world.db, KEYS).put(contact_id(case_id), case_id, contact)
    for role in (Role.supervisor, Role.department, Role.command_centre):  # shown no name
        answer = await world.intake.get(f"/cases/{case_id}", headers=world.bearer(role))
        assert answer.status_code == 200 and PHONE not in answer.text
    assert await world.records(kind="read") == []
    answer = await world.intake.get(f"/cases/{case_id}", headers=world.bearer(Role.hotline))
    assert PHONE in answer.text
    [read] = await world.records(kind="read")
    assert read["actor"] == {"role": "hotline", "id": "hotline-1"}
    assert (read["case_id"], read["fields"]) == (case_id, ["reporter.name", "reporter.phone"])
    assert PHONE not in str(read) and NAME not in str(read)


# --- reading the trail ----------------------------------------------------------------------


async def test_the_trail_is_read_by_case_subject_and_time(world: World) -> None:
    case_id = f"C-{uuid.uuid4().hex[:8]}"
    events = story(case_id)
    for env in events:
        await audit(world.trail, env)
    await world.trail.add(refusal("intake", "GET /x", "C-other", None, 401, "no token"))
    headers = world.bearer(Role.supervision_centre)

    async def read(**params: Any) -> list[str]:
        answer = await world.intake.get("/audit", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return [r["action"].rsplit(".", 1)[-1] for r in answer.json()]

    assert await read(case=case_id) == ["reported", "filed", "dispatched", "acknowledged"]
    assert await read(subject="WATER/crew-1") == ["acknowledged"]
    assert await read(case=case_id, since=events[2].time.isoformat()) == [
        "dispatched",
        "acknowledged",
    ]
    assert await read(case=case_id, limit=1) == ["reported"]
    answer = await world.intake.get("/audit", headers=world.bearer(Role.admin))
    assert len(answer.json()) == 5


def test_gridloop_audit_prints_a_case_s_trail(servers: Servers) -> None:
    database = f"test_{uuid.uuid4().hex[:12]}"
    case_id = f"C-{uuid.uuid4().hex[:8]}"

    async def seed() -> None:
        client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
        trail = AuditTrail(client[database])
        for env in story(case_id):
            await audit(trail, env)
        await trail.add(refusal("intake", "GET /cases/{case_id}", "C-other", None, 401, "x"))
        await client.close()

    asyncio.run(seed())
    env = {"MONGODB_URI": servers.mongodb, "GRIDLOOP_MONGODB_DATABASE": database}
    result = CliRunner().invoke(cli, ["audit", "--case", case_id], env=env, terminal_width=250)
    assert result.exit_code == 0, result.output
    assert "gridloop.case.filed" in result.output and "centre-1" in result.output
    assert "WATER/crew-1" in result.output
    assert "C-other" not in result.output
