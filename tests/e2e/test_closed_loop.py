"""The closed loop end to end, over real wire protocols: HTTP, Kafka, MongoDB, webhooks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from aiokafka import ConsumerRecord
from standardwebhooks import Webhook

from gridloop.auth import Role
from gridloop.kafka import EventProducer
from schemas.events import Stage
from tests.e2e.conftest import FAST_CLASS, Delivery, Receiver, Running
from tests.helpers import eventually, read_topic

WEBSITE_REPORT: dict[str, Any] = {
    "channel": "website",
    "kind": "event",
    "class_code": "0102",  # exposed garbage → SANITATION
    "point": {"lon": 116.4035, "lat": 39.9205},
    "description": "暴露垃圾 rubbish piled at the lane entrance",
    "reporter": {"name": "李女士", "phone": "13900000000"},
}


async def case_in_state(
    http: httpx.AsyncClient, case_id: str, state: str, having: Sequence[str] = ()
) -> dict[str, Any]:
    """The case once in `state` and, on its timeline, the steps `having` (they come from
    other topics than the state's event, so the projection may apply them after it)."""

    async def probe() -> dict[str, Any] | None:
        response = await http.get(f"/cases/{case_id}")
        if response.status_code == 200 and response.json()["state"] == state:
            doc: dict[str, Any] = response.json()
            steps = {e["type"] for e in doc["timeline"]}
            return doc if steps.issuperset(having) else None
        return None

    return await eventually(probe, what=f"case {case_id} {state}")


async def intake_client(running: Running) -> httpx.AsyncClient:
    """An intake client reading as the supervision centre (`GET /cases` is for staff)."""
    token = await running.token(Role.supervision_centre, "centre-e2e")
    return httpx.AsyncClient(
        base_url=running.system.url("intake"), headers={"Authorization": f"Bearer {token}"}
    )


async def as_supervisor(running: Running, supervisor: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await running.token(Role.supervisor, supervisor)}"}


async def delivery_for(receiver: Receiver, case_id: str, n: int = 1) -> list[Delivery]:
    async def probe() -> list[Delivery] | None:
        found = [d for d in receiver.deliveries if case_id.encode() in d.body]
        return found if len(found) >= n else None

    return await eventually(probe, what=f"{n} webhook(s) for {case_id}")


async def test_report_to_closure(running: Running, receiving: Receiver) -> None:
    intake = await intake_client(running)
    dispatch = httpx.AsyncClient(base_url=running.system.url("dispatch"))
    supervisor = await as_supervisor(running, "SUP-9")
    async with intake, dispatch:
        # A citizen reports through the website, without an account.
        async with httpx.AsyncClient(base_url=running.system.url("intake")) as citizen:
            submitted = await citizen.post("/reports", json=WEBSITE_REPORT)
        assert submitted.status_code == 202, submitted.text
        case_id = submitted.json()["case_id"]
        await case_in_state(intake, case_id, "reported")

        verified = await intake.post(
            f"/cases/{case_id}/verification",
            json={"supervisor_id": "SUP-9", "confirmed": True},
            headers=supervisor,
        )
        assert verified.status_code == 202, verified.text

        [delivery] = await delivery_for(receiving, case_id)
        secret = running.pack.departments["SANITATION"].webhook.secret  # type: ignore[union-attr]
        message = Webhook(secret).verify(delivery.body, delivery.headers)
        assert delivery.department == "SANITATION"
        assert message["type"] == "case.dispatched"
        assert message["data"]["case_id"] == case_id
        assert message["data"]["description"] == WEBSITE_REPORT["description"]

        await case_in_state(intake, case_id, "dispatched")
        sanitation = {
            "Authorization": f"Bearer {await running.token(Role.department, 'SANITATION')}"
        }
        handled = await dispatch.post(
            f"/departments/SANITATION/cases/{case_id}/handled",
            json={"handler_id": "crew-3", "note": "cleared"},
            headers=sanitation,
        )
        assert handled.status_code == 202, handled.text

        await case_in_state(intake, case_id, "handled")
        checked = await intake.post(
            f"/cases/{case_id}/check",
            json={"supervisor_id": "SUP-9", "passed": True},
            headers=supervisor,
        )
        assert checked.status_code == 202, checked.text

        steps = tuple(f"case.{s}" for s in ("reported", "verified", "filed", "dispatched"))
        steps += ("case.handled", "case.checked")
        case = await case_in_state(intake, case_id, "closed", having=steps)
    timeline = [(e["type"], e["version"]) for e in case["timeline"]]
    assert timeline == [
        ("case.reported", 1),
        ("case.verified", 2),
        ("case.filed", 3),
        ("case.dispatched", 4),
        ("case.handled", 5),
        ("case.checked", 6),
        ("case.closed", 7),
    ]
    assert case["timeline"][4]["actor"] == {"role": "department", "id": "SANITATION/crew-3"}


async def test_a_failed_check_sends_the_case_back_to_its_department(
    running: Running, receiving: Receiver
) -> None:
    report = WEBSITE_REPORT | {
        "channel": "supervisor",
        "reporter": {"id": "SUP-2"},
        "point": {"lon": 116.4045, "lat": 39.9205},  # not a duplicate of another test's case
    }
    intake = await intake_client(running)
    dispatch = httpx.AsyncClient(base_url=running.system.url("dispatch"))
    supervisor = await as_supervisor(running, "SUP-2")
    async with intake, dispatch:
        posted = await intake.post("/reports", json=report, headers=supervisor)
        case_id = posted.json()["case_id"]
        await case_in_state(intake, case_id, "dispatched")
        sanitation = {
            "Authorization": f"Bearer {await running.token(Role.department, 'SANITATION')}"
        }
        handled = await dispatch.post(
            f"/departments/SANITATION/cases/{case_id}/handled",
            json={"handler_id": "crew-1"},
            headers=sanitation,
        )
        assert handled.status_code == 202, handled.text
        await case_in_state(intake, case_id, "handled")
        await intake.post(
            f"/cases/{case_id}/check",
            json={"supervisor_id": "SUP-2", "passed": False, "note": "still dirty"},
            headers=supervisor,
        )
        case = await case_in_state(
            intake, case_id, "dispatched", having=("case.checked", "case.rework")
        )
        first, second = await delivery_for(receiving, case_id, 2)
    assert case["version"] == 7
    assert [e["type"] for e in case["timeline"]][-3:] == [
        "case.checked",
        "case.rework",
        "case.dispatched",
    ]
    assert first.headers["webhook-id"] != second.headers["webhook-id"]


async def test_an_urgent_report_is_dispatched_with_the_urgent_deadline(
    running: Running, receiving: Receiver
) -> None:
    """The supervisor grades the report urgent; dispatch reckons the handling deadline with
    the city's policy and calendar, as the SLA engine does: 2 office hours, not 4."""
    report = WEBSITE_REPORT | {
        "channel": "supervisor",
        "reporter": {"id": "SUP-6"},
        "point": {"lon": 116.4055, "lat": 39.9205},  # not a duplicate of another test's case
        "urgency": "urgent",
    }
    intake = await intake_client(running)
    async with intake:
        posted = await intake.post(
            "/reports", json=report, headers=await as_supervisor(running, "SUP-6")
        )
        assert posted.status_code == 202, posted.text
        case = await case_in_state(intake, posted.json()["case_id"], "dispatched", ("case.filed",))
    assert case["urgency"] == "urgent"
    # Counted from the dispatch itself (issue 19), not from the filing.
    [dispatched_at] = [
        datetime.fromisoformat(e["at"]) for e in case["timeline"] if e["type"] == "case.dispatched"
    ]
    urgent = running.pack.sla.deadline(Stage.handle, "event", "0102", "urgent", dispatched_at)
    normal = running.pack.sla.deadline(Stage.handle, "event", "0102", None, dispatched_at)
    assert urgent is not None and normal is not None
    deadline = datetime.fromisoformat(case["deadline"])
    # The deadline and the dispatch time reach the projection each cut to milliseconds on its
    # own way: they may differ by one.
    assert abs(deadline - urgent.due) <= timedelta(milliseconds=1)
    assert deadline < normal.due
    assert case["deadline_assumed_years"] == list(urgent.assumed_years)


async def test_an_unhandled_deadline_becomes_a_breach(
    running: Running, receiving: Receiver
) -> None:
    kind, code = FAST_CLASS
    report = WEBSITE_REPORT | {
        "channel": "supervisor",
        "kind": kind,
        "class_code": code,
        "reporter": {"id": "SUP-5"},
    }
    supervisor = {"Authorization": f"Bearer {await running.token(Role.supervisor, 'SUP-5')}"}
    async with httpx.AsyncClient(
        base_url=running.system.url("intake"), headers=supervisor
    ) as intake:
        submitted = await intake.post("/reports", json=report)
        assert submitted.status_code == 202, submitted.text
        case_id = submitted.json()["case_id"]

        async def red() -> dict[str, Any] | None:
            doc: dict[str, Any] = (await intake.get(f"/cases/{case_id}")).json()
            light = doc.get("sla", {}).get("handle", {}).get("light")
            return doc if light == "red" else None

        case = await eventually(red, within=60, what="the handling light turns red")
    assert case["state"] == "dispatched"
    [breach] = [e for e in case["timeline"] if e["type"] == "sla.breach"]
    assert breach["data"]["department"] == "TRAFFIC-POLICE"
    assert breach["data"]["stage"] == "handle"

    def types(records: list[ConsumerRecord[bytes, bytes]]) -> list[bytes]:
        return [dict(r.headers)["ce_type"] for r in records if r.key == case_id.encode()]

    def escalated(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return b"gridloop.sla.escalation" in types(records)

    # The breach goes up the ladder at once to the case's community (sla.yaml).
    records = await read_topic(running.kafka, running.topic("sla"), escalated)
    sent = types(records)
    assert sent.index(b"gridloop.sla.breach") < sent.index(b"gridloop.sla.escalation")
    [escalation] = [
        json.loads(r.value or b"")
        for r in records
        if r.key == case_id.encode() and dict(r.headers)["ce_type"] == b"gridloop.sla.escalation"
    ]
    assert escalation["tier"] == "community"
    assert escalation["notify_department"].startswith("COMMUNITY-")


async def test_a_malformed_record_is_dead_lettered_and_the_next_report_still_flows(
    running: Running, receiving: Receiver
) -> None:
    junk_key = f"junk-{uuid.uuid4().hex[:8]}".encode()
    producer = EventProducer(running.kafka, namespace=running.namespace)
    await producer.start()
    try:
        await producer.send_raw(running.topic("reports"), junk_key, b"{oops", [("ce_type", b"x")])
    finally:
        await producer.stop()
    report = WEBSITE_REPORT | {
        "channel": "supervisor",
        "reporter": {"id": "SUP-7"},
        "point": {"lon": 116.4065, "lat": 39.9205},  # not a duplicate of another test's case
    }
    supervisor = await as_supervisor(running, "SUP-7")
    async with await intake_client(running) as intake:
        posted = await intake.post("/reports", json=report, headers=supervisor)
        case_id = posted.json()["case_id"]
        await case_in_state(intake, case_id, "dispatched")

    def both_groups(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return {dict(r.headers)["dlq_group"] for r in records if r.key == junk_key} >= {
            running.topic("dispatch").encode(),
            running.topic("projections").encode(),
        }

    dead_letters = await read_topic(running.kafka, running.topic("reports.dlq"), both_groups)
    dead = [r for r in dead_letters if r.key == junk_key]
    assert all(b"missing header" in dict(r.headers)["dlq_error"] for r in dead)
