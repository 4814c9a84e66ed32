"""The departments' callback API and the command centre's actions, on a real broker and
database: the projection is fed by a real consumer, as in the running system."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from gridloop.auth import CredentialStore, Role
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.kafka import EventProducer, Pipeline, ensure_topics
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import Actor, CaseDispatched, CaseFiled, CaseReported
from schemas.events import Role as ActorRole
from schemas.topics import LIFECYCLE_TOPICS
from services.dispatch.api import create_app
from services.dispatch.handlers import Dispatch
from services.projections.store import CaseStore
from tests.conftest import Servers, fresh_namespace
from tests.helpers import eventually

GRID = "110101001002001"
SUP = Actor(role=ActorRole.supervisor, id="SUP-1")


@dataclass
class Harness:
    http: httpx.AsyncClient
    producer: EventProducer
    cases: CaseStore
    credentials: CredentialStore

    async def token(self, role: Role, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.credentials.issue(role, subject)}"}

    async def dispatched_case(
        self, department: str = "SANITATION", assisting: Sequence[str] = (), due: float = 4
    ) -> str:
        """A filed case dispatched to `department`, `due` hours from now."""
        case_id = f"C-{uuid.uuid4().hex[:12]}"
        now = datetime.now(UTC)
        events = [
            CaseReported(
                case_id=case_id,
                version=1,
                actor=SUP,
                channel="supervisor",
                class_code="0102",
                kind="event",
                point={"lon": 116.4025, "lat": 39.9205},
                grid_code=GRID,
                description="暴露垃圾",
            ),
            CaseFiled(
                case_id=case_id,
                version=2,
                actor=SUP,
                kind="event",
                class_code="0102",
                grid_code=GRID,
            ),
            CaseDispatched(
                case_id=case_id,
                version=3,
                actor=Actor(role=ActorRole.command_centre, id="auto-dispatch"),
                department=department,
                assisting=list(assisting),
                deadline=now + timedelta(hours=due),
                rule="test",
            ),
        ]
        await self.producer.publish([Envelope(e, "/tests") for e in events])
        await self.state(case_id, "dispatched")
        return case_id

    async def state(self, case_id: str, state: str, **expect: Any) -> Document:
        async def probe() -> Document | None:
            doc = await self.cases.get(case_id)
            if doc and doc["state"] == state and all(doc.get(k) == v for k, v in expect.items()):
                return doc
            return None

        return await eventually(probe, within=20, what=f"{case_id} {state} {expect}")


@pytest.fixture(scope="module")
async def harness(servers: Servers) -> AsyncIterator[Harness]:
    namespace = fresh_namespace()  # the projection reads this harness's events alone
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
    dispatch = Dispatch.on(load_city_pack(DEMO_CITY_PACK), db, producer)
    transport = httpx.ASGITransport(app=create_app(dispatch, credentials))
    async with httpx.AsyncClient(transport=transport, base_url="http://dispatch") as http:
        yield Harness(http, producer, cases, credentials)
    stop.set()
    await projection
    await producer.stop()
    await mongo.close()


def _detail(response: httpx.Response) -> dict[str, Any]:
    detail: dict[str, Any] = response.json()["detail"][0]
    return detail


async def test_a_department_reaches_only_its_own_cases(harness: Harness) -> None:
    case_id = await harness.dispatched_case("SANITATION")
    water = await harness.token(Role.department, "WATER")
    centre = await harness.token(Role.command_centre, "cc-1")
    body = {"handler_id": "crew-1", "note": "swept"}
    url = f"/departments/SANITATION/cases/{case_id}/handled"

    anonymous = await harness.http.post(url, json=body)
    assert anonymous.status_code == 401
    posing = await harness.http.post(url, json=body, headers=water)
    assert posing.status_code == 403
    assert _detail(posing)["loc"] == ["path", "department"]
    assert "WATER's, not SANITATION's" in _detail(posing)["msg"]
    not_theirs = await harness.http.post(
        f"/departments/WATER/cases/{case_id}/handled", json=body, headers=water
    )
    assert not_theirs.status_code == 403
    assert _detail(not_theirs)["type"] == "forbidden"
    wrong_role = await harness.http.post(url, json=body, headers=centre)
    assert wrong_role.status_code == 403
    assert "allowed: department" in _detail(wrong_role)["msg"]

    # Nothing changed: the owner's answer is the very next version.
    sanitation = await harness.token(Role.department, "SANITATION")
    handled = await harness.http.post(url, json=body, headers=sanitation)
    assert handled.status_code == 202, handled.text
    assert handled.json()["version"] == 4
    doc = await harness.state(case_id, "handled")
    assert [e["type"] for e in doc["timeline"]] == ["reported", "filed", "dispatched", "handled"]


async def test_bad_input_is_refused_with_field_and_reason(harness: Harness) -> None:
    case_id = await harness.dispatched_case("SANITATION")
    sanitation = await harness.token(Role.department, "SANITATION")
    base = f"/departments/SANITATION/cases/{case_id}"
    missing = await harness.http.post(
        f"{base}/return", json={"handler_id": "h"}, headers=sanitation
    )
    assert missing.status_code == 422
    assert _detail(missing)["loc"] == ["body", "reason"]
    assert _detail(missing)["type"] == "missing"
    photo = await harness.http.post(
        f"{base}/handled", json={"handler_id": "h", "photos": ["ftp://x"]}, headers=sanitation
    )
    assert photo.status_code == 422
    assert _detail(photo)["loc"][:3] == ["body", "photos", 0]
    unknown = await harness.http.post(
        "/departments/SANITATION/cases/nope/acknowledge",
        json={"handler_id": "h"},
        headers=sanitation,
    )
    assert unknown.status_code == 404
    assert _detail(unknown)["loc"] == ["path", "case_id"]
    doc = await harness.state(case_id, "dispatched")
    assert doc["version"] == 3


async def test_extension_requested_refused_while_pending_then_approved(harness: Harness) -> None:
    case_id = await harness.dispatched_case("SANITATION", due=2)
    sanitation = await harness.token(Role.department, "SANITATION")
    lead = await harness.token(Role.shift_lead, "cc-1")  # approvals are the shift lead's
    later = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    ask = {"handler_id": "h", "deadline": later.isoformat(), "reason": "the crane is booked"}
    url = f"/departments/SANITATION/cases/{case_id}/extension"

    nothing_to_approve = await harness.http.post(
        f"/cases/{case_id}/extension/approve", json={"dispatcher": "cc-1"}, headers=lead
    )
    assert nothing_to_approve.status_code == 409
    assert _detail(nothing_to_approve)["type"] == "no_pending_request"

    requested = await harness.http.post(url, json=ask, headers=sanitation)
    assert requested.status_code == 202, requested.text
    request_id = requested.json()["request_id"]
    await eventually(
        lambda: _pending(harness, case_id, request_id), within=20, what="request pending"
    )
    # The very same request again is the same fact: the same answer, no second request.
    again = await harness.http.post(url, json=ask, headers=sanitation)
    assert again.status_code == 202, again.text
    assert again.json() == requested.json()
    # Another request while this one waits is refused, saying where the case stands.
    other = await harness.http.post(url, json=ask | {"reason": "rain"}, headers=sanitation)
    assert other.status_code == 409
    assert _detail(other)["type"] == "request_pending"
    assert (other.json()["state"], other.json()["version"]) == ("dispatched", 3)

    by_department = await harness.http.post(
        f"/cases/{case_id}/extension/approve", json={"dispatcher": "x"}, headers=sanitation
    )
    assert by_department.status_code == 403
    approved = await harness.http.post(
        f"/cases/{case_id}/extension/approve", json={"dispatcher": "cc-1"}, headers=lead
    )
    assert approved.status_code == 202, approved.text
    doc = await harness.state(case_id, "dispatched", version=4)
    assert doc["deadline"] == later
    assert doc["pending_request"] is None
    assert doc["timeline"][-1]["data"]["request_id"] == request_id


async def test_extension_denied_then_a_new_request_is_a_new_fact(harness: Harness) -> None:
    case_id = await harness.dispatched_case("SANITATION")
    sanitation = await harness.token(Role.department, "SANITATION")
    lead = await harness.token(Role.shift_lead, "cc-1")  # approvals are the shift lead's
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    ask = {"handler_id": "h", "deadline": later, "reason": "rain"}
    url = f"/departments/SANITATION/cases/{case_id}/extension"
    first = (await harness.http.post(url, json=ask, headers=sanitation)).json()["request_id"]
    await eventually(lambda: _pending(harness, case_id, first), within=20, what="pending")
    no_reason = await harness.http.post(
        f"/cases/{case_id}/extension/deny", json={"dispatcher": "cc-1"}, headers=lead
    )
    assert no_reason.status_code == 422
    denied = await harness.http.post(
        f"/cases/{case_id}/extension/deny",
        json={"dispatcher": "cc-1", "reason": "rain stops tonight"},
        headers=lead,
    )
    assert denied.status_code == 202, denied.text
    await eventually(lambda: _pending(harness, case_id, None), within=20, what="settled")
    second = await harness.http.post(url, json=ask, headers=sanitation)
    assert second.status_code == 202
    assert second.json()["request_id"] != first
    doc = await eventually(
        lambda: _pending(harness, case_id, second.json()["request_id"]), within=20, what="again"
    )
    types = [e["type"] for e in doc["timeline"]]
    assert types.count("gridloop.case.extension_requested") == 2
    assert "gridloop.case.extension_denied" in types
    assert doc["version"] == 3  # requests and denials never move the case


async def test_parking_return_and_redispatch_by_hand(harness: Harness) -> None:
    case_id = await harness.dispatched_case("SANITATION", assisting=["STREET-001"])
    sanitation = await harness.token(Role.department, "SANITATION")
    street = await harness.token(Role.department, "STREET-001")
    water = await harness.token(Role.department, "WATER")
    centre = await harness.token(Role.command_centre, "cc-1")
    lead = await harness.token(Role.shift_lead, "cc-1")  # approvals are the shift lead's
    base = f"/departments/SANITATION/cases/{case_id}"

    ack = await harness.http.post(
        f"/departments/STREET-001/cases/{case_id}/acknowledge",
        json={"handler_id": "s-1"},
        headers=street,
    )
    assert ack.status_code == 202, ack.text
    assert ack.json()["case_version"] == 3

    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    park = await harness.http.post(
        f"{base}/parking",
        json={"handler_id": "h", "reason": "permit"},
        headers=sanitation | key,
    )
    assert park.status_code == 202, park.text
    retried = await harness.http.post(
        f"{base}/parking",
        json={"handler_id": "h", "reason": "permit"},
        headers=sanitation | key,
    )
    assert retried.json() == park.json()  # the first answer, not a second request
    await eventually(
        lambda: _pending(harness, case_id, park.json()["request_id"]), within=20, what="pending"
    )
    approved = await harness.http.post(
        f"/cases/{case_id}/parking/approve", json={"dispatcher": "cc-1"}, headers=lead
    )
    assert approved.status_code == 202, approved.text
    await harness.state(case_id, "parked", version=4)

    while_parked = await harness.http.post(
        f"{base}/handled", json={"handler_id": "h"}, headers=sanitation
    )
    assert while_parked.status_code == 409
    assert _detail(while_parked)["type"] == "invalid_transition"
    resumed = await harness.http.post(
        f"{base}/resume", json={"handler_id": "h"}, headers=sanitation
    )
    assert resumed.status_code == 202, resumed.text
    await harness.state(case_id, "dispatched", version=5)

    returned = await harness.http.post(
        f"{base}/return",
        json={"handler_id": "h", "reason": "the water company's pipe"},
        headers=sanitation,
    )
    assert returned.status_code == 202, returned.text
    await harness.state(case_id, "returned", version=6)
    twice = await harness.http.post(
        f"{base}/return", json={"handler_id": "h", "reason": "again"}, headers=sanitation
    )
    assert twice.status_code == 409

    order = {"dispatcher": "cc-1", "department": "WATER", "reason": "the pipe is theirs"}
    by_water = await harness.http.post(f"/cases/{case_id}/dispatch", json=order, headers=water)
    assert by_water.status_code == 403
    unknown = await harness.http.post(
        f"/cases/{case_id}/dispatch", json=order | {"department": "MARS"}, headers=centre
    )
    assert unknown.status_code == 422
    assert _detail(unknown)["loc"] == ["body", "department"]
    redispatched = await harness.http.post(f"/cases/{case_id}/dispatch", json=order, headers=centre)
    assert redispatched.status_code == 202, redispatched.text
    doc = await harness.state(case_id, "dispatched", version=7, department="WATER")
    assert doc["timeline"][-1]["data"]["basis"] == "manual"

    too_late = await harness.http.post(
        f"{base}/handled", json={"handler_id": "h"}, headers=sanitation
    )
    assert too_late.status_code == 403
    handled = await harness.http.post(
        f"/departments/WATER/cases/{case_id}/handled",
        json={"handler_id": "w-1", "photos": ["https://img.example/after.jpg"]},
        headers=water,
    )
    assert handled.status_code == 202, handled.text
    doc = await harness.state(case_id, "handled", version=8)
    assert doc["timeline"][-1]["data"]["photos"] == ["https://img.example/after.jpg"]
    centre_view = await harness.http.get(f"/cases/{case_id}", headers=centre)
    assert centre_view.json()["department"] == "WATER"


async def test_an_overdue_case_is_explained_once(harness: Harness) -> None:
    on_time = await harness.dispatched_case("SANITATION", due=1)
    overdue = await harness.dispatched_case("SANITATION", due=-1)
    sanitation = await harness.token(Role.department, "SANITATION")
    answer = {"handler_id": "h", "explanation": "the crew was at a fire"}
    early = await harness.http.post(
        f"/departments/SANITATION/cases/{on_time}/explanation", json=answer, headers=sanitation
    )
    assert early.status_code == 409
    assert _detail(early)["type"] == "not_overdue"
    url = f"/departments/SANITATION/cases/{overdue}/explanation"
    first = await harness.http.post(url, json=answer, headers=sanitation)
    again = await harness.http.post(url, json=answer, headers=sanitation)
    assert first.status_code == again.status_code == 202
    assert first.json()["events"] == again.json()["events"]  # one fact, one id

    async def explained() -> Document | None:
        doc = await harness.cases.get(overdue)
        types = [e["type"] for e in doc["timeline"]] if doc else []
        return doc if "gridloop.case.explained" in types else None

    doc = await eventually(explained, within=20, what="explanation projected")
    assert [e["type"] for e in doc["timeline"]].count("gridloop.case.explained") == 1


async def _pending(harness: Harness, case_id: str, request_id: str | None) -> Document | None:
    doc = await harness.cases.get(case_id)
    if doc is None:
        return None
    pending = doc.get("pending_request")
    current = pending["request_id"] if pending else None
    return doc if current == request_id else None


async def test_a_department_lists_its_own_cases_with_their_lights(harness: Harness) -> None:
    """`GET /department/cases`: the credential names the department; its cases as lead or
    assisting, soonest deadline first, each with its light and whether it acknowledged;
    paged; filtered by state and light; nobody else's."""
    late = await harness.dispatched_case("QUEUETEST", due=-1)
    soon = await harness.dispatched_case("QUEUETEST", due=1)
    helping = await harness.dispatched_case("SANITATION", assisting=["QUEUETEST"], due=5)
    await harness.dispatched_case("SANITATION", due=2)  # not ours
    mine = await harness.token(Role.department, "QUEUETEST")
    acknowledged = await harness.http.post(
        f"/departments/QUEUETEST/cases/{soon}/acknowledge",
        json={"handler_id": "crew-1"},
        headers=mine,
    )
    assert acknowledged.status_code == 202, acknowledged.text

    async def listed(**query: Any) -> dict[str, Any]:
        found = await harness.http.get("/department/cases", params=query, headers=mine)
        assert found.status_code == 200, found.text
        body: dict[str, Any] = found.json()
        return body

    async def shows_acknowledged() -> dict[str, Any] | None:
        body = await listed()
        return body if any(c["acknowledged"] for c in body["cases"]) else None

    everything = await eventually(shows_acknowledged, what="the acknowledgement projected")
    rows = [(c["case_id"], c["role"], c["light"], c["acknowledged"]) for c in everything["cases"]]
    assert rows == [
        (late, "lead", "red", False),
        (soon, "lead", "yellow", True),
        (helping, "assisting", "green", False),
    ]
    assert everything["next"] is None

    first = await listed(limit=2)
    assert [c["case_id"] for c in first["cases"]] == [late, soon] and first["next"] == 2
    rest = await listed(limit=2, offset=2)
    assert [c["case_id"] for c in rest["cases"]] == [helping] and rest["next"] is None
    reds = await listed(light="red")
    assert [c["case_id"] for c in reds["cases"]] == [late]
    handled = await listed(state="handled")
    assert handled["cases"] == []

    refused = await harness.http.get("/department/cases", params={"light": "blue"}, headers=mine)
    assert refused.status_code == 422 and _detail(refused)["loc"] == ["query", "light"]
    centre = await harness.token(Role.command_centre, "cc-1")
    assert (await harness.http.get("/department/cases", headers=centre)).status_code == 403
    assert (await harness.http.get("/department/cases")).status_code == 401


async def test_a_department_acts_at_a_path_its_credential_names(harness: Harness) -> None:
    """`/department/cases/{id}/…`: the credential says which department; the answer is the
    one the old path `/departments/{code}/…` gives, which still works."""
    case_id = await harness.dispatched_case("SANITATION", assisting=["WATER"])
    sanitation = await harness.token(Role.department, "SANITATION")
    water = await harness.token(Role.department, "WATER")
    roads = await harness.token(Role.department, "ROADS")
    ack = {"handler_id": "crew-1"}

    acked = await harness.http.post(
        f"/department/cases/{case_id}/acknowledge", json=ack, headers=sanitation
    )
    assert acked.status_code == 202, acked.text
    assert {k: acked.json()[k] for k in ("state", "version", "type")} == {
        "state": "dispatched",
        "version": 3,
        "type": "case.acknowledged",
    }
    # The assisting department at the old path: kept for compatibility.
    old = await harness.http.post(
        f"/departments/WATER/cases/{case_id}/acknowledge", json=ack, headers=water
    )
    assert old.status_code == 202, old.text
    assert old.json()["type"] == "case.acknowledged"

    # A department the case was not sent to: refused, nothing changed.
    other = await harness.http.post(
        f"/department/cases/{case_id}/handled", json={"handler_id": "x"}, headers=roads
    )
    assert other.status_code == 403
    centre = await harness.token(Role.command_centre, "cc-1")
    wrong_role = await harness.http.post(
        f"/department/cases/{case_id}/handled", json={"handler_id": "x"}, headers=centre
    )
    assert wrong_role.status_code == 403

    handled = await harness.http.post(
        f"/department/cases/{case_id}/handled",
        json={"handler_id": "crew-1", "note": "cleared"},
        headers=sanitation,
    )
    assert handled.status_code == 202, handled.text
    assert (handled.json()["state"], handled.json()["version"]) == ("handled", 4)
    doc = await harness.state(case_id, "handled")
    assert doc["timeline"][-1]["actor"]["id"] == "SANITATION/crew-1"
