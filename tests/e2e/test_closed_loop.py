"""The closed loop end to end, over real wire protocols: HTTP, Kafka, MongoDB, webhooks."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from aiokafka import ConsumerRecord
from standardwebhooks import Webhook

from gridloop.kafka import EventProducer
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


async def case_in_state(http: httpx.AsyncClient, case_id: str, state: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        response = await http.get(f"/cases/{case_id}")
        if response.status_code == 200 and response.json()["state"] == state:
            doc: dict[str, Any] = response.json()
            return doc
        return None

    return await eventually(probe, what=f"case {case_id} {state}")


async def delivery_for(receiver: Receiver, case_id: str, n: int = 1) -> list[Delivery]:
    async def probe() -> list[Delivery] | None:
        found = [d for d in receiver.deliveries if case_id.encode() in d.body]
        return found if len(found) >= n else None

    return await eventually(probe, what=f"{n} webhook(s) for {case_id}")


async def test_report_to_closure(running: Running, receiving: Receiver) -> None:
    intake = httpx.AsyncClient(base_url=running.system.url("intake"))
    dispatch = httpx.AsyncClient(base_url=running.system.url("dispatch"))
    async with intake, dispatch:
        submitted = await intake.post("/reports", json=WEBSITE_REPORT)
        assert submitted.status_code == 202, submitted.text
        case_id = submitted.json()["case_id"]
        await case_in_state(intake, case_id, "reported")

        verified = await intake.post(
            f"/cases/{case_id}/verification", json={"supervisor_id": "SUP-9", "confirmed": True}
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
        handled = await dispatch.post(
            f"/departments/SANITATION/cases/{case_id}/handled",
            json={"handler_id": "crew-3", "note": "cleared"},
        )
        assert handled.status_code == 202, handled.text

        await case_in_state(intake, case_id, "handled")
        checked = await intake.post(
            f"/cases/{case_id}/check", json={"supervisor_id": "SUP-9", "passed": True}
        )
        assert checked.status_code == 202, checked.text

        case = await case_in_state(intake, case_id, "closed")
    timeline = [(e["type"], e["version"]) for e in case["timeline"]]
    assert timeline == [
        ("reported", 1),
        ("verified", 2),
        ("filed", 3),
        ("dispatched", 4),
        ("handled", 5),
        ("checked", 6),
        ("closed", 7),
    ]
    assert case["timeline"][4]["actor"] == {"role": "department", "id": "SANITATION/crew-3"}


async def test_a_failed_check_sends_the_case_back_to_its_department(
    running: Running, receiving: Receiver
) -> None:
    report = WEBSITE_REPORT | {"channel": "supervisor", "reporter": {"id": "SUP-2"}}
    intake = httpx.AsyncClient(base_url=running.system.url("intake"))
    dispatch = httpx.AsyncClient(base_url=running.system.url("dispatch"))
    async with intake, dispatch:
        case_id = (await intake.post("/reports", json=report)).json()["case_id"]
        await case_in_state(intake, case_id, "dispatched")
        await dispatch.post(
            f"/departments/SANITATION/cases/{case_id}/handled", json={"handler_id": "crew-1"}
        )
        await case_in_state(intake, case_id, "handled")
        await intake.post(
            f"/cases/{case_id}/check",
            json={"supervisor_id": "SUP-2", "passed": False, "note": "still dirty"},
        )
        case = await case_in_state(intake, case_id, "dispatched")
        first, second = await delivery_for(receiving, case_id, 2)
    assert case["version"] == 7
    assert [e["type"] for e in case["timeline"]][-3:] == ["checked", "rework", "dispatched"]
    assert first.headers["webhook-id"] != second.headers["webhook-id"]


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
    async with httpx.AsyncClient(base_url=running.system.url("intake")) as intake:
        case_id = (await intake.post("/reports", json=report)).json()["case_id"]

        async def red() -> dict[str, Any] | None:
            doc: dict[str, Any] = (await intake.get(f"/cases/{case_id}")).json()
            light = doc.get("sla", {}).get("handle", {}).get("light")
            return doc if light == "red" else None

        case = await eventually(red, within=60, what="the handling light turns red")
    assert case["state"] == "dispatched"
    assert case["timeline"][-1]["type"] == "gridloop.sla.breach"
    assert case["timeline"][-1]["data"]["department"] == "TRAFFIC-POLICE"

    def breach(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return any(r.key == case_id.encode() for r in records)

    records = [
        r for r in await read_topic(running.kafka, "sla", breach) if r.key == case_id.encode()
    ]
    assert dict(records[0].headers)["ce_type"] == b"gridloop.sla.breach"


async def test_a_malformed_record_is_dead_lettered_and_the_next_report_still_flows(
    running: Running, receiving: Receiver
) -> None:
    junk_key = f"junk-{uuid.uuid4().hex[:8]}".encode()
    producer = EventProducer(running.kafka)
    await producer.start()
    try:
        await producer.send_raw("reports", junk_key, b"{oops", [("ce_type", b"x")])
    finally:
        await producer.stop()
    report = WEBSITE_REPORT | {"channel": "supervisor", "reporter": {"id": "SUP-7"}}
    async with httpx.AsyncClient(base_url=running.system.url("intake")) as intake:
        case_id = (await intake.post("/reports", json=report)).json()["case_id"]
        await case_in_state(intake, case_id, "dispatched")

    def both_groups(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return {dict(r.headers)["dlq_group"] for r in records if r.key == junk_key} >= {
            b"dispatch",
            b"projections",
        }

    dead = [
        r for r in await read_topic(running.kafka, "reports.dlq", both_groups) if r.key == junk_key
    ]
    assert all(b"missing header" in dict(r.headers)["dlq_error"] for r in dead)
