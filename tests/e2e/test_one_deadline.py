"""One handling deadline, wherever it is read (issue 19): a case walked through dispatch,
parking (挂账), resumption, extension (延期) and rework (返工) on the whole system, comparing
after each step the deadline on the case record (`GET /cases/{id}`), in the department's
webhook of that step (dispatch, resume, extension, re-dispatch) and on the SLA engine's
handling clock (its table, read from the table's changelog topic).

The case is a road collapse (event 0401): an emergency on the natural clock, limit PT1H, so
an hour of parking moves the deadline by exactly the time parked, at any hour of the day.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import httpx
from aiokafka import ConsumerRecord

from gridloop.auth import Role
from schemas.events import Stage
from services.sla.core import CaseClocks, StageClock
from tests.e2e.conftest import Receiver, Running
from tests.e2e.test_closed_loop import as_supervisor, case_in_state, intake_client
from tests.helpers import eventually, read_topic

CHANGELOG = "gridloop-sla-clocks-changelog"  # faust: <app id>-<table>-changelog, namespaced
REPORT: dict[str, Any] = {
    "channel": "supervisor",
    "kind": "event",
    "class_code": "0401",  # road collapse → ROADS, natural time, handle PT1H
    "point": {"lon": 116.4075, "lat": 39.9205},  # grid 110101002002002
    "description": "路面塌陷 the pavement gave way",
    "reporter": {"id": "SUP-0004"},
}
MS = timedelta(milliseconds=1)  # MongoDB keeps milliseconds; Kafka and webhooks keep µs


def _text(raw: bytes | None) -> Any:
    """A changelog key or value: JSON, whose value is the compact JSON text of the clocks."""
    found = json.loads(raw) if raw else None
    return json.loads(found) if isinstance(found, str) and found.startswith("{") else found


async def engine_clock(running: Running, case_id: str, version: int) -> StageClock:
    """The SLA engine's handling clock of `case_id` once its table has applied `version`."""

    def latest(records: list[ConsumerRecord[bytes, bytes]]) -> CaseClocks | None:
        mine = [r for r in records if _text(r.key) == case_id and r.value]
        return CaseClocks.from_json(_text(mine[-1].value)) if mine else None

    def applied(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        state = latest(records)
        return state is not None and state.version >= version

    changelog = running.topic(CHANGELOG)
    state = latest(await read_topic(running.kafka, changelog, applied, within=30))
    assert state is not None
    handle = state.clock(Stage.handle)
    assert handle is not None, f"no handling clock at version {version}: {state.clocks}"
    return handle


async def webhook(receiver: Receiver, case_id: str, kind: str, version: int) -> dict[str, Any]:
    """The `data` and `timestamp` of the webhook of `kind` at `version` sent to ROADS."""

    async def probe() -> dict[str, Any] | None:
        for delivery in receiver.deliveries:
            message = json.loads(delivery.body)
            data = message["data"]
            if (
                delivery.department == "ROADS"
                and message["type"] == f"case.{kind}"
                and data["case_id"] == case_id
                and data["version"] == version
            ):
                return {**data, "timestamp": datetime.fromisoformat(message["timestamp"])}
        return None

    return await eventually(probe, what=f"the {kind} webhook of {case_id} v{version}")


async def record(intake: httpx.AsyncClient, case_id: str, version: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        doc: dict[str, Any] = (await intake.get(f"/cases/{case_id}")).json()
        return doc if doc.get("version", 0) >= version else None

    return await eventually(probe, what=f"case {case_id} at version {version}")


async def one_deadline(
    running: Running, intake: httpx.AsyncClient, case_id: str, version: int, kind: str
) -> datetime:
    """The deadline after the step that made `version`, the same in all three places."""
    told = await webhook(running.receiver, case_id, kind, version)
    deadline = datetime.fromisoformat(told["deadline"])
    shown = await record(intake, case_id, version)
    engine = await engine_clock(running, case_id, version)
    assert engine.running and engine.due == deadline, (kind, engine, deadline)
    assert abs(datetime.fromisoformat(shown["deadline"]) - deadline) < MS, (kind, shown)
    return deadline


async def test_park_resume_extend_rework_show_one_deadline(
    running: Running, receiving: Receiver
) -> None:
    roads = {"Authorization": f"Bearer {await running.token(Role.department, 'ROADS')}"}
    # Approvals are the shift lead's (值班长).
    lead = {"Authorization": f"Bearer {await running.token(Role.shift_lead, 'lead-1')}"}
    supervisor = await as_supervisor(running, "SUP-0004")
    intake = await intake_client(running)
    dispatch = httpx.AsyncClient(base_url=running.system.url("dispatch"))
    hand = {"handler_id": "crew-7"}
    async with intake, dispatch:
        posted = await intake.post("/reports", json=REPORT, headers=supervisor)
        assert posted.status_code == 202, posted.text
        case_id = posted.json()["case_id"]
        await case_in_state(intake, case_id, "dispatched")

        # 1. Dispatched (v3): the limit counted from the dispatch itself.
        dispatched = await webhook(running.receiver, case_id, "dispatched", 3)
        first = await one_deadline(running, intake, case_id, 3, "dispatched")
        assert reckoned_at(running, dispatched["timestamp"], first)

        # 2. Parked (v4): the clock stands still; the record keeps the deadline it had.
        asked = await dispatch.post(
            f"/departments/ROADS/cases/{case_id}/parking",
            json=hand | {"reason": "waiting for the gas company"},
            headers=roads,
        )
        assert asked.status_code == 202, asked.text
        await eventually(
            lambda: _pending(intake, case_id), what="the parking request on the record"
        )
        approved = await dispatch.post(
            f"/cases/{case_id}/parking/approve", json={"dispatcher": "cc-1"}, headers=lead
        )
        assert approved.status_code == 202, approved.text
        parked = await webhook(running.receiver, case_id, "parked", 4)
        shown = await record(intake, case_id, 4)
        assert shown["state"] == "parked"
        assert abs(datetime.fromisoformat(shown["deadline"]) - first) < MS
        paused = await engine_clock(running, case_id, 4)
        assert not paused.running and paused.due is None

        # 3. Resumed (v5) after a while: the deadline moves by the time parked.
        await asyncio.sleep(1.5)
        resumed = await dispatch.post(
            f"/departments/ROADS/cases/{case_id}/resume", json=hand, headers=roads
        )
        assert resumed.status_code == 202, resumed.text
        moved = await one_deadline(running, intake, case_id, 5, "resumed")
        resumed_at = (await webhook(running.receiver, case_id, "resumed", 5))["timestamp"]
        parked_for = resumed_at - parked["timestamp"]
        assert parked_for > timedelta(seconds=1.4)
        # Dispatch decided a moment before its event's time, from the parking time the
        # record keeps (milliseconds): the move is the time parked, to within that.
        assert abs((moved - first) - parked_for) < 20 * MS

        # 4. Extended (v6) by two hours past the moved deadline.
        later = moved + timedelta(hours=2)
        asked = await dispatch.post(
            f"/departments/ROADS/cases/{case_id}/extension",
            json=hand | {"deadline": later.isoformat(), "reason": "the main is deeper"},
            headers=roads,
        )
        assert asked.status_code == 202, asked.text
        await eventually(
            lambda: _pending(intake, case_id), what="the extension request on the record"
        )
        approved = await dispatch.post(
            f"/cases/{case_id}/extension/approve", json={"dispatcher": "cc-1"}, headers=lead
        )
        assert approved.status_code == 202, approved.text
        extended = await one_deadline(running, intake, case_id, 6, "extended")
        assert abs(extended - later) < MS  # as asked (the request was kept in milliseconds)

        # 5. Handled (v7), the check fails (v8), rework (v9), re-dispatched (v10): the
        # handling time starts again at the re-dispatch.
        handled = await dispatch.post(
            f"/departments/ROADS/cases/{case_id}/handled", json=hand, headers=roads
        )
        assert handled.status_code == 202, handled.text
        await case_in_state(intake, case_id, "handled")
        checked = await intake.post(
            f"/cases/{case_id}/check",
            json={"passed": False, "note": "still sinking"},
            headers=supervisor,
        )
        assert checked.status_code == 202, checked.text
        again = await one_deadline(running, intake, case_id, 10, "dispatched")
        redispatched = await webhook(running.receiver, case_id, "dispatched", 10)
        assert reckoned_at(running, redispatched["timestamp"], again)


def reckoned_at(running: Running, event_time: datetime, deadline: datetime) -> bool:
    """Whether `deadline` is the class's limit from the dispatch: decided a moment (under a
    second) before its event's time; on the natural clock, the limit itself (PT1H) later."""
    limit = running.pack.sla.terms("event", "0401", None).limits[Stage.handle]
    return event_time - timedelta(seconds=1) <= deadline - limit <= event_time


async def _pending(intake: httpx.AsyncClient, case_id: str) -> bool:
    doc = (await intake.get(f"/cases/{case_id}")).json()
    return doc.get("pending_request") is not None
