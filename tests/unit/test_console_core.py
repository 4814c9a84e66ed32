"""The workbench's queues and lights, on hand-built case records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridloop.access import Principal, Role
from gridloop.cases.lights import Light, light
from gridloop.cases.record import CaseRecord
from services.console import core
from services.console.core import Call, Queue

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
ACTOR = {"role": "command_centre", "id": "auto-dispatch"}


def entry(kind: str, at: datetime = NOW, **data: Any) -> dict[str, Any]:
    return {"event_id": f"e-{kind}-{len(data)}", "type": kind, "version": 3, "at": at, "data": data}


def case(
    state: str = "dispatched", deadline: timedelta | None = timedelta(hours=5), **more: Any
) -> CaseRecord:
    doc: dict[str, Any] = {
        "_id": "C-1",
        "state": state,
        "version": 3,
        "department": "ROADS",
        "assisting": ["WATER"],
        "deadline": NOW + deadline if deadline is not None else None,
        "timeline": [entry("dispatched", actor=ACTOR)],
    }
    return CaseRecord.model_validate(doc | more)


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (timedelta(hours=5), Light.green),
        (timedelta(hours=2), Light.yellow),  # due within two hours
        (timedelta(minutes=1), Light.yellow),
        (timedelta(0), Light.red),  # due now: late
        (-timedelta(hours=1), Light.red),
    ],
)
def test_the_light_follows_the_deadline(left: timedelta, expected: Light) -> None:
    assert light(case(deadline=left), NOW) is expected


def test_the_sla_engines_warning_on_this_deadline_turns_it_yellow_and_not_an_older_one() -> None:
    warned = {"light": "yellow", "deadline": NOW + timedelta(hours=5), "case_version": 3}
    assert light(case(sla={"handle": warned}), NOW) is Light.yellow
    old = warned | {"deadline": NOW - timedelta(days=1)}  # before an extension
    assert light(case(sla={"handle": old}), NOW) is Light.green


def test_a_parked_case_keeps_the_light_it_had_and_a_done_one_has_none() -> None:
    late = {"light": "red", "deadline": NOW - timedelta(hours=1), "case_version": 3}
    parked = case("parked", deadline=-timedelta(hours=1), sla={"handle": late})
    assert light(parked, NOW) is Light.red
    assert light(case("parked", deadline=-timedelta(hours=1)), NOW) is Light.green
    assert light(case("handled", deadline=-timedelta(hours=1)), NOW) is Light.green


def test_queues_new_until_acknowledged_since_the_last_dispatch() -> None:
    fresh = case()
    assert core.queue(fresh, "ROADS") is Queue.new
    assert core.actions(fresh, "ROADS") == ("acknowledge", "return")
    ack = entry("gridloop.case.acknowledged", department="ROADS")
    working = case(timeline=[*fresh.model_dump()["timeline"], ack])
    assert core.queue(working, "ROADS") is Queue.working
    assert core.actions(working, "ROADS") == ("handled", "return")
    assert core.queue(working, "WATER") is Queue.new  # the assisting one has not yet
    redispatched = case(timeline=[*working.model_dump()["timeline"], entry("dispatched")])
    assert core.queue(redispatched, "ROADS") is Queue.new  # a re-dispatch is acknowledged anew


def test_an_assisting_department_acknowledges_but_only_the_lead_reports_handled() -> None:
    ack = entry("gridloop.case.acknowledged", department="WATER")
    assisted = case(timeline=[entry("dispatched"), ack])
    assert core.actions(assisted, "WATER") == ()
    assert core.queue(case("parked"), "ROADS") is Queue.parked
    assert core.queue(case("closed"), "ROADS") is Queue.done
    assert core.actions(case("handled"), "ROADS") == ()


def test_rows_put_the_reddest_first() -> None:
    cases = [
        case(deadline=timedelta(hours=5), _id="green"),
        case(deadline=-timedelta(hours=1), _id="red"),
        case(deadline=timedelta(hours=1), _id="yellow"),
    ]
    shown = [r.case.case_id for r in core.rows(cases, "ROADS", NOW)]
    assert shown == ["red", "yellow", "green"]


def test_each_role_calls_its_own_routes_and_no_other() -> None:
    roads = Principal(Role.department, "ROADS", "wang.li")
    form = {"note": "filled", "reason": "", "department": "WATER"}
    assert core.call(roads, "C-1", "handled", form) == Call(
        "dispatch",
        "/departments/ROADS/cases/C-1/handled",
        {"handler_id": "wang.li", "note": "filled"},
    )
    assert core.call(roads, "C-1", "dispatch", form) is None  # the centre's, not theirs
    centre = Principal(Role.command_centre, "centre", "zhao.min")
    assert core.call(centre, "C-1", "dispatch", form) == Call(
        "dispatch",
        "/cases/C-1/dispatch",
        {"dispatcher": "zhao.min", "department": "WATER", "reason": ""},
    )
    # Answering a request is the shift lead's (its desk), not the dispatcher's.
    assert core.call(centre, "C-1", "parking/approve", form) is None
    assert core.call(centre, "C-1", "handled", form) is None
    operator = Principal(Role.supervision_centre, "centre", "liu.yang")
    assert core.call(operator, "C-1", "void", form) == Call(
        "intake", "/cases/C-1/void", {"reason": ""}
    )
    assert core.call(operator, "C-1", "file", form) == Call(
        "intake", "/cases/C-1/file", {"note": "filled"}
    )
    assert core.call(operator, "C-1", "dispatch", form) is None
    supervisor = Principal(Role.supervisor, "SUP-1")
    assert core.call(supervisor, "C-1", "handled", form) is None


def test_the_centre_dispatches_by_hand_and_leaves_requests_to_the_shift_lead() -> None:
    pending = {
        "request_id": "r-1",
        "kind": "extension",
        "department": "ROADS",
        "reason": "materials",
        "case_version": 3,
    }
    assert core.centre_actions(case(pending_request=pending)) == ("dispatch",)
    assert core.centre_actions(case("returned")) == ("dispatch",)
    assert core.centre_actions(case("closed")) == ()
