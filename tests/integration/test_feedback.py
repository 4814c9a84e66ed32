"""Residents' feedback over intake's HTTP API, on the real broker and database: a rating
evaluates the closed case; a dissatisfied one reopens it, and dispatch sends it back to the
department that handled it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.auth import CredentialStore, Role
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.http import HttpLimits
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.mongo import Document
from schemas import clock
from schemas.envelope import Envelope, decode
from schemas.events import (
    Actor,
    CaseChecked,
    CaseClosed,
    CaseDispatched,
    CaseEvent,
    CaseFiled,
    CaseHandled,
    CaseReported,
    CaseReworked,
    Channel,
    FeedbackGiven,
    Point,
    Reporter,
)
from schemas.events import Role as ActorRole
from services.dispatch.handlers import Dispatch
from services.intake.api import Intake, follow_key
from services.intake.api import create_app as intake_app
from services.intake.views import follow_token
from services.projections.store import CaseStore
from tests.conftest import Servers
from tests.helpers import read_topic

GRID = "110101001002001"
CITIZEN = "citizen-42"
SUP = Actor(role=ActorRole.supervisor, id="SUP-1")
CREW = Actor(role=ActorRole.department, id="SANITATION/crew-1")


@dataclass
class Desk:
    http: httpx.AsyncClient
    intake: Intake
    pack: CityPack
    kafka: str
    tokens: dict[Role, str]
    db: AsyncDatabase[Document]
    producer: EventProducer

    @property
    def projection(self) -> CaseStore:
        return CaseStore(self.db)

    def bearer(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def closed_case(self) -> str:
        """A website report by CITIZEN, handled by SANITATION and closed after the check."""
        case_id = f"C-{uuid.uuid4().hex[:12]}"
        now = clock.now()
        common: dict[str, Any] = {"kind": "event", "class_code": "0102", "grid_code": GRID}
        lifecycle: list[CaseEvent] = [
            CaseReported(
                case_id=case_id,
                version=1,
                actor=Actor(role=ActorRole.citizen, id=CITIZEN),
                channel=Channel.website,
                point=Point(lon=116.4025, lat=39.9205),
                description="暴露垃圾",
                reporter=Reporter(id=CITIZEN),
                **common,
            ),
            CaseFiled(case_id=case_id, version=2, actor=SUP, **common),
            CaseDispatched(
                case_id=case_id,
                version=3,
                actor=Actor(role=ActorRole.command_centre, id="auto"),
                department="SANITATION",
                deadline=now + timedelta(hours=4),
                rule="test",
            ),
            CaseHandled(case_id=case_id, version=4, actor=CREW, department="SANITATION"),
            CaseChecked(case_id=case_id, version=5, actor=SUP, passed=True),
            CaseClosed(case_id=case_id, version=6, actor=SUP),
        ]
        for event in lifecycle:
            await self.projection.apply(Envelope(event, "/tests"))
        return case_id

    async def published(self, case_id: str, count: int) -> list[Envelope]:
        """The events the API published about `case_id` to `closures`, projected."""

        def enough(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
            return len(_of(records, case_id)) >= count

        records = await read_topic(self.kafka, "closures", enough)
        envelopes = [decode(r.value, r.headers) for r in _of(records, case_id)]
        for env in envelopes:
            await self.projection.apply(env)
        return envelopes

    async def dispatches(self, case_id: str) -> list[Envelope]:
        """The dispatches published about `case_id`."""
        records = await read_topic(self.kafka, "dispatches", lambda rs: bool(_of(rs, case_id)))
        return [decode(r.value, r.headers) for r in _of(records, case_id)]


def _of(records: list[ConsumerRecord[bytes, bytes]], case_id: str) -> list[Any]:
    return [r for r in records if r.key == case_id.encode()]


@pytest.fixture
async def desk(servers: Servers) -> AsyncIterator[Desk]:
    await ensure_topics(servers.kafka)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    producer = EventProducer(servers.kafka)
    await producer.start()
    pack = load_city_pack(DEMO_CITY_PACK)
    credentials = CredentialStore(db)
    tokens = {
        Role.public: await credentials.issue(Role.public, CITIZEN),
        Role.hotline: await credentials.issue(Role.hotline, "operator-3"),
        Role.supervisor: await credentials.issue(Role.supervisor, "SUP-1"),
    }
    intake = Intake(pack, producer, db, await follow_key(db))
    app = intake_app(intake, HttpLimits(public_rate="10000/minute"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield Desk(http, intake, pack, servers.kafka, tokens, db, producer)
    await producer.stop()
    await mongo.close()


async def test_a_dissatisfied_resident_reopens_the_case_and_it_is_dispatched_again(
    desk: Desk,
) -> None:
    case_id = await desk.closed_case()
    token = follow_token(desk.intake.follow_key, case_id)
    answered = await desk.http.post(
        f"/cases/{case_id}/feedback",
        params={"token": token},
        json={"rating": 1, "comment": "垃圾还在 the rubbish is still there"},
    )
    assert answered.status_code == 202, answered.text
    assert (answered.json()["state"], answered.json()["version"]) == ("rework", 8)

    given, reworked = await desk.published(case_id, 2)
    assert isinstance(given.data, FeedbackGiven) and given.data.rating == 1
    assert given.data.actor == Actor(role=ActorRole.citizen, id=CITIZEN)
    assert isinstance(reworked.data, CaseReworked)
    assert (await desk.projection.get(case_id) or {})["state"] == "rework"

    # Dispatch reacts to a reopening as to a failed check: back to the department.
    await Dispatch.on(desk.pack, desk.db, desk.producer).on_event(reworked)
    [again] = await desk.dispatches(case_id)
    assert isinstance(again.data, CaseDispatched)
    assert (again.data.department, again.data.version) == ("SANITATION", 9)
    assert again.data.rule.startswith("rework")

    # The reopened case is open again: no second rating until it is closed again.
    refused = await desk.http.post(
        f"/cases/{case_id}/feedback", params={"token": token}, json={"rating": 5}
    )
    assert refused.status_code == 409
    assert refused.json()["detail"][0]["loc"] == ["state"]
    assert "dispatched" in refused.json()["detail"][0]["msg"]  # as its head has it now
    assert (refused.json()["state"], refused.json()["version"]) == ("dispatched", 9)


async def test_a_closure_is_rated_once(desk: Desk) -> None:
    case_id = await desk.closed_case()
    # The reporter's own citizen credential serves instead of the follow token.
    first = await desk.http.post(
        f"/cases/{case_id}/feedback", headers=desk.bearer(Role.public), json={"rating": 5}
    )
    assert first.status_code == 202, first.text
    assert first.json()["state"] == "evaluated"
    [given] = await desk.published(case_id, 1)
    assert isinstance(given.data, FeedbackGiven) and given.data.rating == 5
    assert (await desk.projection.get(case_id) or {})["state"] == "evaluated"

    second = await desk.http.post(
        f"/cases/{case_id}/feedback", headers=desk.bearer(Role.hotline), json={"rating": 2}
    )
    assert second.status_code == 409
    assert second.json()["detail"][0]["type"] == "already_rated"


async def test_a_hotline_follow_up_call_rates_the_case(desk: Desk) -> None:
    case_id = await desk.closed_case()
    headers = desk.bearer(Role.hotline) | {"Idempotency-Key": "call-1"}
    first = await desk.http.post(f"/cases/{case_id}/feedback", headers=headers, json={"rating": 3})
    again = await desk.http.post(f"/cases/{case_id}/feedback", headers=headers, json={"rating": 3})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()  # the retry's answer is the original's
    [given] = await desk.published(case_id, 1)
    assert isinstance(given.data, FeedbackGiven)
    assert given.data.actor == Actor(role=ActorRole.hotline, id="operator-3")


async def test_a_stranger_is_not_told_the_case_exists(desk: Desk) -> None:
    case_id = await desk.closed_case()
    url = f"/cases/{case_id}/feedback"
    stranger = await desk.http.post(url, params={"token": "glf_forged"}, json={"rating": 1})
    assert stranger.status_code == 404
    supervisor = await desk.http.post(url, headers=desk.bearer(Role.supervisor), json={"rating": 1})
    assert supervisor.status_code == 403
    assert supervisor.json()["detail"][0]["loc"] == ["header", "Authorization"]


@pytest.mark.parametrize("rating", [0, 6, "five"])
async def test_a_bad_rating_is_named(desk: Desk, rating: object) -> None:
    case_id = await desk.closed_case()
    token = follow_token(desk.intake.follow_key, case_id)
    answered = await desk.http.post(
        f"/cases/{case_id}/feedback", params={"token": token}, json={"rating": rating}
    )
    assert answered.status_code == 422
    problem = answered.json()["detail"][0]
    assert problem["loc"] == ["body", "rating"]
    assert problem["msg"]
