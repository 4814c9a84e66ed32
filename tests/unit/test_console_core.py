"""The workbench's queues and lights, on hand-built case records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridloop.access import Principal, Role
from gridloop.cases.lights import Light, light
from gridloop.cases.record import CaseRecord
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.lifecycle import State
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
    assert core.actions(working, "ROADS") == ("handled", "return", "extension", "parking")
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
        "/department/cases/C-1/handled",
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


def test_a_refused_form_is_told_beside_its_fields() -> None:
    problems = [
        {"loc": ["body", "note"], "msg": "String should have at most 2000 characters"},
        {"loc": ["body", "kind"], "msg": "a corrected class needs both kind and class_code"},
        {"loc": ["body", "csrf"], "msg": "Field required"},  # no field of its own
        {"loc": ["path", "case_id"], "msg": "no case"},
        "not a problem",
    ]
    assert core.form_errors(problems) == {
        "note": "String should have at most 2000 characters",
        "class_code": "a corrected class needs both kind and class_code",
        "action": "Field required",
    }
    assert core.form_values({"note": "x", "file": object()}) == {"note": "x"}
    assert core.form_values(None) == {}


def test_the_operator_files_in_a_corrected_class_and_merges_into_a_similar_case() -> None:
    operator = Principal(Role.supervision_centre, "centre", "liu.yang")
    form = {"class_code": "event:0401", "note": "", "into_case_id": "C-2", "reason": ""}
    assert core.call(operator, "C-1", "file", form) == Call(
        "intake", "/cases/C-1/file", {"kind": "event", "class_code": "0401"}
    )
    assert core.call(operator, "C-1", "merge", form) == Call(
        "intake", "/cases/C-1/merge", {"into_case_id": "C-2"}
    )
    centre = Principal(Role.command_centre, "centre", "zhao.min")
    ordered = {"department": "ROADS", "assisting": "WATER,GREENING", "reason": "joint"}
    dispatched = core.call(centre, "C-1", "dispatch", ordered)
    assert dispatched is not None and dispatched.body["assisting"] == ["WATER", "GREENING"]


@dataclass(frozen=True)
class Near:
    case_id: str
    kind: str
    class_code: str
    state: State
    lon: float
    lat: float
    reported_at: datetime = NOW


def test_similar_cases_are_open_ones_of_the_class_nearby_nearest_first() -> None:
    report = case(
        "reported",
        None,
        kind="event",
        class_code="0101",
        point={"type": "Point", "coordinates": [116.4070, 39.9200]},
    )
    candidates = [
        Near("C-1", "event", "0101", State.reported, 116.4070, 39.9200),  # itself
        Near("far", "event", "0101", State.reported, 116.4070, 39.9220),  # ≈ 222 m
        Near("next", "event", "0101", State.filed, 116.4070, 39.9210),  # ≈ 111 m
        Near("near", "event", "0101", State.dispatched, 116.4070, 39.9205),  # ≈ 56 m
        Near("closed", "event", "0101", State.closed, 116.4070, 39.9201),
        Near("other", "event", "0102", State.reported, 116.4070, 39.9201),
    ]
    found = core.similar(report, candidates)
    assert [(s.case_id, round(s.metres)) for s in found] == [("near", 56), ("next", 111)]
    assert core.similar_keys(report)  # the duplicate search's cells around it
    assert core.intake_actions(report, found) == ("file", "void", "merge")
    assert core.intake_actions(report) == ("file", "void")


def test_the_suggestion_is_routings_and_only_for_a_case_to_dispatch() -> None:
    pack = load_city_pack(DEMO_CITY_PACK)
    where: dict[str, Any] = {"kind": "event", "class_code": "0401", "grid_code": "110101002002002"}
    suggested = core.suggestion(pack, case("returned", **where))
    assert suggested is not None
    assert (suggested.department, suggested.basis) == ("ROADS", "class_default")
    assert core.suggestion(pack, case("handled", **where)) is None


def test_only_an_escalation_of_the_deadline_the_case_has_now_counts() -> None:
    deadline = NOW + timedelta(hours=5)
    clock = {"light": "red", "deadline": deadline, "case_version": 3, "tier": "street"}
    assert core.escalated(case(sla={"handle": clock})) == "street"
    moved = clock | {"deadline": NOW - timedelta(days=1)}  # escalated before an extension
    assert core.escalated(case(sla={"handle": moved})) is None
    assert core.escalated(case(sla={"handle": clock | {"tier": None}})) is None
