"""The shift lead's (值班长) commands on a real broker and database: a return that waits for
approval (a pack that says so), approved and denied; 督办 and the department's reply, each
through the command path and into the projection a real consumer feeds."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from gridloop.auth import CredentialStore, Role
from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack, load_city_pack
from gridloop.citypack.sla import Approvals, SlaPolicy
from gridloop.config import DEMO_CITY_PACK
from gridloop.kafka import EventProducer, Pipeline, ensure_topics
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.topics import LIFECYCLE_TOPICS
from services.dispatch.api import create_app
from services.dispatch.handlers import Dispatch
from services.projections.store import CaseStore
from tests.conftest import Servers, fresh_namespace
from tests.helpers import eventually
from tests.integration.test_dispatch_api import Harness


def approving() -> CityPack:
    """The demo pack with returns and resumptions waiting for the shift lead (sla.yaml
    `approvals`)."""
    pack = load_city_pack(DEMO_CITY_PACK)
    changed = copy.copy(pack)
    approvals = Approvals(return_=True, resume=True)
    file = pack.sla.file.model_copy(update={"approvals": approvals})
    changed.sla = SlaPolicy(file, pack.city)
    return changed


@pytest.fixture(scope="module")
async def lead_harness(servers: Servers) -> AsyncIterator[Harness]:
    namespace = fresh_namespace()
    await ensure_topics(servers.kafka, namespace=namespace)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    producer = EventProducer(servers.kafka, namespace=namespace)
    await producer.start()
    cases = CaseStore(db)

    async def project(env: Envelope) -> Sequence[Envelope]:
        await cases.apply(env)
        return ()

    stop = asyncio.Event()
    topics = [t.name for t in LIFECYCLE_TOPICS]
    group = f"projections-{uuid.uuid4().hex[:8]}"
    projection = asyncio.create_task(
        Pipeline(group, topics, project, producer, servers.kafka, 6000).run(stop)
    )
    credentials = CredentialStore(db)
    dispatch = Dispatch.on(approving(), db, producer)
    transport = httpx.ASGITransport(app=create_app(dispatch, credentials))
    async with httpx.AsyncClient(transport=transport, base_url="http://dispatch") as http:
        yield Harness(http, producer, cases, credentials)
    stop.set()
    await projection
    await producer.stop()
    await mongo.close()


def _type(response: httpx.Response) -> str:
    detail: list[dict[str, Any]] = response.json()["detail"]
    return str(detail[0]["type"])


async def _pending(h: Harness, case_id: str, kind: str | None) -> Document | None:
    doc = await h.cases.get(case_id)
    if doc is None:
        return None
    pending = doc.get("pending_request")
    found = pending["kind"] if pending else None
    return doc if found == kind else None


async def test_a_return_waits_for_the_shift_lead_who_approves_it(lead_harness: Harness) -> None:
    h = lead_harness
    case_id = await h.dispatched_case("SANITATION")
    sanitation = await h.token(Role.department, "SANITATION")
    centre = await h.token(Role.command_centre, "cc-1")
    lead = await h.token(Role.shift_lead, "lead-1")
    ask = {"handler_id": "h", "reason": "the pipe is the water company's"}
    requested = await h.http.post(
        f"/departments/SANITATION/cases/{case_id}/return", json=ask, headers=sanitation
    )
    assert requested.status_code == 202, requested.text
    body = requested.json()
    assert (body["type"], body["state"], body["version"]) == (
        "case.return_requested",
        "dispatched",
        3,
    )
    await eventually(lambda: _pending(h, case_id, "return"), within=20, what="return pending")

    approve = f"/cases/{case_id}/return/approve"
    by_dispatcher = await h.http.post(approve, json={"dispatcher": "cc-1"}, headers=centre)
    assert by_dispatcher.status_code == 403  # approvals are the shift lead's
    approved = await h.http.post(approve, json={"dispatcher": "lead-1"}, headers=lead)
    assert approved.status_code == 202, approved.text
    assert (approved.json()["state"], approved.json()["version"]) == ("returned", 4)
    doc = await h.state(case_id, "returned", version=4)
    last = doc["timeline"][-1]
    assert last["actor"] == {"role": "shift_lead", "id": "lead-1"}
    assert last["data"]["request_id"] == body["request_id"]
    assert last["reason"] == ask["reason"]
    assert doc["pending_request"] is None
    again = await h.http.post(approve, json={"dispatcher": "lead-1"}, headers=lead)
    assert again.json() == approved.json()  # the same request again: its answer, once
    other = await h.http.post(approve, json={"dispatcher": "lead-2"}, headers=lead)
    assert (other.status_code, _type(other)) == (409, "no_pending_request")


async def test_a_denied_return_leaves_the_case_with_its_department(lead_harness: Harness) -> None:
    h = lead_harness
    case_id = await h.dispatched_case("SANITATION")
    sanitation = await h.token(Role.department, "SANITATION")
    lead = await h.token(Role.shift_lead, "lead-1")
    url = f"/departments/SANITATION/cases/{case_id}/return"
    requested = await h.http.post(url, json={"handler_id": "h", "reason": "r"}, headers=sanitation)
    assert requested.status_code == 202, requested.text
    await eventually(lambda: _pending(h, case_id, "return"), within=20, what="return pending")
    deny = f"/cases/{case_id}/return/deny"
    no_reason = await h.http.post(deny, json={"dispatcher": "lead-1"}, headers=lead)
    assert no_reason.status_code == 422
    assert no_reason.json()["detail"][0]["loc"] == ["body", "reason"]
    denied = await h.http.post(
        deny, json={"dispatcher": "lead-1", "reason": "the drain is yours"}, headers=lead
    )
    assert denied.status_code == 202, denied.text
    assert denied.json()["type"] == "case.return_denied"
    doc = await eventually(lambda: _pending(h, case_id, None), within=20, what="settled")
    assert (doc["state"], doc["version"], doc["department"]) == ("dispatched", 3, "SANITATION")


async def test_a_parked_case_resumes_once_the_shift_lead_approves(lead_harness: Harness) -> None:
    h = lead_harness
    case_id = await h.dispatched_case("SANITATION")
    sanitation = await h.token(Role.department, "SANITATION")
    lead = await h.token(Role.shift_lead, "lead-1")
    park = {"handler_id": "h", "reason": "waiting for a permit"}
    asked = await h.http.post(f"/department/cases/{case_id}/parking", json=park, headers=sanitation)
    assert asked.status_code == 202, asked.text
    await eventually(lambda: _pending(h, case_id, "parking"), within=20, what="parking pending")
    parked = await h.http.post(
        f"/cases/{case_id}/parking/approve", json={"dispatcher": "lead-1"}, headers=lead
    )
    assert parked.status_code == 202, parked.text
    before = await h.state(case_id, "parked", version=4)

    resume = {"handler_id": "h", "reason": "the permit came"}
    requested = await h.http.post(
        f"/department/cases/{case_id}/resume", json=resume, headers=sanitation
    )
    assert requested.status_code == 202, requested.text
    assert (requested.json()["type"], requested.json()["state"]) == (
        "case.resume_requested",
        "parked",
    )
    await eventually(lambda: _pending(h, case_id, "resume"), within=20, what="resume pending")
    approved = await h.http.post(
        f"/cases/{case_id}/resume/approve", json={"dispatcher": "lead-1"}, headers=lead
    )
    assert approved.status_code == 202, approved.text
    assert (approved.json()["state"], approved.json()["version"]) == ("dispatched", 5)
    doc = await h.state(case_id, "dispatched", version=5)
    last = doc["timeline"][-1]
    assert (last["type"], last["actor"]) == ("resumed", {"role": "shift_lead", "id": "lead-1"})
    assert last["data"]["request_id"] == requested.json()["request_id"]
    # the one deadline: the record's is the one the approval reckoned (unit-tested by hand)
    assert last["data"]["deadline"] is not None
    carried = datetime.fromisoformat(last["data"]["deadline"])
    assert abs(doc["deadline"] - carried) < timedelta(milliseconds=1)  # BSON keeps ms
    assert before["parked_at"] is not None
    assert doc["pending_request"] is None


async def test_an_urge_and_its_reply(lead_harness: Harness) -> None:
    h = lead_harness
    case_id = await h.dispatched_case("SANITATION")
    sanitation = await h.token(Role.department, "SANITATION")
    water = await h.token(Role.department, "WATER")
    centre = await h.token(Role.command_centre, "cc-1")
    lead = await h.token(Role.shift_lead, "lead-1")
    urge = {"lead": "lead-1", "message": "the bin overflows: act today"}
    by_dispatcher = await h.http.post(f"/cases/{case_id}/urge", json=urge, headers=centre)
    assert by_dispatcher.status_code == 403
    blank = await h.http.post(f"/cases/{case_id}/urge", json=urge | {"message": ""}, headers=lead)
    assert blank.status_code == 422
    assert blank.json()["detail"][0]["loc"] == ["body", "message"]
    urged = await h.http.post(f"/cases/{case_id}/urge", json=urge, headers=lead)
    assert urged.status_code == 202, urged.text
    assert urged.json()["type"] == "case.urged"
    urge_id = urged.json()["urge_id"]
    retried = await h.http.post(f"/cases/{case_id}/urge", json=urge, headers=lead)
    assert retried.json() == urged.json()  # the same request again: one urge
    more = urge | {"message": "still overflowing"}
    second = await h.http.post(f"/cases/{case_id}/urge", json=more, headers=lead)
    assert (second.status_code, _type(second)) == (409, "urge_pending")
    seen = await h.http.get(f"/cases/{case_id}", headers=lead)
    assert seen.json()["urge"]["urge_id"] == urge_id
    assert seen.json()["urge"]["department"] == "SANITATION"

    async def urged_record() -> CaseRecord | None:
        doc = await h.cases.get(case_id)
        record = CaseRecord.model_validate(doc) if doc else None
        return record if record and record.open_urge() else None

    record = await eventually(urged_record, within=20, what="the urge projected")
    open_urge = record.open_urge()
    assert open_urge is not None and open_urge.message == urge["message"]
    assert open_urge.reply_by > open_urge.urged_at

    reply = {"handler_id": "h", "reply": "crew on site at 15:00"}
    not_theirs = await h.http.post(
        f"/departments/WATER/cases/{case_id}/urge-reply", json=reply, headers=water
    )
    assert not_theirs.status_code == 403
    replied = await h.http.post(
        f"/departments/SANITATION/cases/{case_id}/urge-reply", json=reply, headers=sanitation
    )
    assert replied.status_code == 202, replied.text
    assert replied.json()["urge_id"] == urge_id

    async def answered() -> CaseRecord | None:
        doc = await h.cases.get(case_id)
        record = CaseRecord.model_validate(doc) if doc else None
        return record if record and record.urges() and record.urges()[-1].reply else None

    done = await eventually(answered, within=20, what="the reply projected")
    assert done.urges()[-1].reply == reply["reply"] and done.open_urge() is None
    assert (done.state, done.version) == ("dispatched", 3)  # urges never move the case
    twice = await h.http.post(
        f"/departments/SANITATION/cases/{case_id}/urge-reply",
        json=reply | {"reply": "again"},
        headers=sanitation,
    )
    assert (twice.status_code, _type(twice)) == (409, "no_urge")
    after = await h.http.get(f"/cases/{case_id}", headers=lead)
    assert after.json()["urge"] is None
