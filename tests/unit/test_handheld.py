"""The handheld's decisions (城管通): its tabs by role, its tasks' lights and order, the
bodies its actions become at intake; and intake's check tasks (核查) with their due time,
on hand-built case records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridloop.access import Role
from gridloop.cases.lights import Light
from gridloop.cases.record import CaseRecord
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from services.console.handheld import core
from services.intake.checks import check_task

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in the demo city


@pytest.mark.parametrize(
    ("left", "warned", "expected"),
    [
        (timedelta(hours=2), None, Light.green),
        (timedelta(minutes=30), None, Light.yellow),  # due within half an hour
        (timedelta(hours=2), "yellow", Light.yellow),  # the SLA engine warned
        (timedelta(hours=2), "red", Light.red),  # … or saw it breached
        (timedelta(0), None, Light.red),
        (None, None, Light.green),  # a task without a due time
    ],
)
def test_a_tasks_light(left: timedelta | None, warned: str | None, expected: Light) -> None:
    due = NOW + left if left is not None else None
    assert core.due_light(due, NOW, warned) is expected


def _task(case_id: str, due: datetime | None, **more: Any) -> dict[str, Any]:
    point = {"type": "Point", "coordinates": [116.4012, 39.9201]}
    return {"case_id": case_id, "version": 1, "due": due and due.isoformat(), "point": point} | more


def test_tasks_are_shown_reddest_first_then_soonest_due() -> None:
    found = [
        _task("later", NOW + timedelta(hours=3)),
        _task("late", NOW - timedelta(minutes=5)),
        _task("soon", NOW + timedelta(minutes=10)),
        _task("sooner-green", NOW + timedelta(hours=1)),
        _task("untimed", None),
    ]
    shown = core.tasks("verification", found, NOW)
    assert [t.case_id for t in shown] == ["late", "soon", "sooner-green", "later", "untimed"]
    assert [t.light for t in shown[:2]] == [Light.red, Light.yellow]
    assert (shown[0].lon, shown[0].lat) == (116.4012, 39.9201)


def test_tabs_by_role() -> None:
    supervisor = [t.name for t in core.tabs(Role.supervisor) if t.ready]
    assert supervisor == ["tasks", "report", "selfhandling", "patrol", "outbox"]
    staff = [t.name for t in core.tabs(Role.grid_staff) if t.ready]
    # No report tab (no channel of theirs); visits are the grid's staff's.
    assert staff == ["tasks", "selfhandling", "visits", "patrol", "outbox"]
    assert all(t.ready for t in core.TABS)
    assert core.tabs(Role.department) == []


def test_a_report_goes_through_the_roles_channel_as_the_person_signed_in() -> None:
    sent = {
        "kind": "component",
        "class_code": "0402",
        "description": "树倒了",
        "point": {"lon": 116.4, "lat": 39.92},
        "media": [],
        "channel": "website",  # the device does not choose the channel
        "reporter": {"id": "someone-else", "phone": "13900000000"},
    }
    body = core.report_body(Role.supervisor, "SUP-0001", sent)
    assert body == {
        "kind": "component",
        "class_code": "0402",
        "description": "树倒了",
        "point": {"lon": 116.4, "lat": 39.92},
        "channel": "supervisor",
        "reporter": {"id": "SUP-0001"},
    }
    assert core.report_body(Role.grid_staff, "GS-1", sent) is None


def test_a_verification_passes_on_only_its_own_fields() -> None:
    sent = {"confirmed": False, "note": "", "media": ["a" * 24], "supervisor_id": "SUP-9"}
    assert core.answer_body(core.VERIFICATION_FIELDS, sent) == {
        "confirmed": False,
        "media": ["a" * 24],
    }


def test_a_check_task_is_due_by_the_packs_check_limit_from_the_handling() -> None:
    pack = load_city_pack(DEMO_CITY_PACK)
    handled = {
        "event_id": "e-1",
        "type": "case.handled",
        "version": 5,
        "at": NOW,
        "data": {"department": "ROADS"},
    }
    doc: dict[str, Any] = {
        "_id": "C-1",
        "state": "handled",
        "version": 5,
        "channel": "supervisor",
        "kind": "event",
        "class_code": "0102",  # exposed garbage: not urgent (a collapse is)
        "department": "SANITATION",
        "timeline": [handled],
    }
    task = check_task(pack, CaseRecord.model_validate(doc))
    # PT4H of office hours from 10:00: 10–12 and 13:30–15:30, Shanghai time.
    assert task["due"] == datetime(2026, 12, 7, 7, 30, tzinfo=UTC)
    assert task["handled_at"] == NOW and task["sla_light"] is None
    warned = {"light": "yellow", "deadline": task["due"], "case_version": 5}
    again = CaseRecord.model_validate(doc | {"sla": {"check": warned}})
    assert check_task(pack, again)["sla_light"] == "yellow"
