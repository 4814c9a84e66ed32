"""Dispatch decisions: routing to the owner department, deadlines in the city's working
time, handled callbacks."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from shapely.geometry import shape

from gridloop.calendar import SHANGHAI
from gridloop.cases import CaseView
from gridloop.citypack import CityPack, Grid, load_city_pack
from gridloop.citypack.owner import route
from gridloop.config import DEMO_CITY_PACK
from gridloop.errors import STATUS
from gridloop.lifecycle import InvalidTransition, State
from gridloop.refusal import Refused, Why
from schemas.envelope import event_id
from schemas.events import (
    Actor,
    CaseDispatched,
    CaseFiled,
    CaseHandled,
    CaseReworked,
    Kind,
    Point,
    Role,
    Stage,
)
from services.dispatch import core
from services.dispatch.commands import Handle
from services.dispatch.core import decide_dispatch, decide_handled

CASE = "C-20250301-0042"
SINCE = datetime(2025, 3, 3, 9, 15, tzinfo=UTC)  # Monday 17:15 in Shanghai: 15 office minutes left
GRID_STREET_1 = "110101001002001"
GRID_STREET_2 = "110101002001001"


@pytest.fixture(scope="module")
def pack() -> CityPack:
    return load_city_pack(DEMO_CITY_PACK)


def _without_department(pack: CityPack, code: str) -> CityPack:
    """The demo pack with one department gone, so classes it owns have an unknown owner.
    `load_city_pack` refuses such a pack, so build it from its parts."""
    features = json.loads((DEMO_CITY_PACK / "grids.geojson").read_text(encoding="utf-8"))
    grids = [
        (Grid.model_validate(f["properties"]), shape(f["geometry"])) for f in features["features"]
    ]
    departments = [d for d in pack.city.departments if d.code != code]
    city = pack.city.model_copy(update={"departments": departments})
    variant = CityPack(city, grids)
    assert code not in variant.departments
    return variant


def _dispatched_case(version: int = 4, **overrides: Any) -> CaseView:
    fields: dict[str, Any] = {
        "case_id": CASE,
        "state": State.dispatched,
        "version": version,
        "kind": "event",
        "class_code": "0102",
        "grid_code": GRID_STREET_1,
        "department": "SANITATION",
    }
    return CaseView(**(fields | overrides))


# --- route ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "class_code", "owner"),
    [
        ("component", "0101", "WATER"),
        ("component", "0118", "ROADS"),
        ("event", "0101", "STREET-001"),
        ("event", "0102", "SANITATION"),
        ("event", "0505", "TRAFFIC-POLICE"),
    ],
)
def test_route_to_the_class_default_owner(
    pack: CityPack, kind: Kind, class_code: str, owner: str
) -> None:
    routed = route(pack, kind, class_code, GRID_STREET_2)
    assert routed.department == owner
    assert routed.basis == "class_default"
    assert routed.assisting == ()
    assert "default owner" in routed.rule
    assert class_code in routed.rule
    assert kind in routed.rule


def test_route_falls_back_to_the_street_office_when_the_owner_is_unknown(pack: CityPack) -> None:
    variant = _without_department(pack, "WATER")
    routed = route(variant, "component", "0101", GRID_STREET_2)
    assert routed.department == "STREET-002"
    assert routed.basis == "street_office"
    assert "street office" in routed.rule
    assert GRID_STREET_2 in routed.rule
    assert route(variant, "component", "0101", GRID_STREET_1).department == "STREET-001"
    # other classes are unaffected
    assert route(variant, "component", "0118", GRID_STREET_2).department == "ROADS"


def test_route_falls_back_to_the_street_office_for_an_unknown_class(pack: CityPack) -> None:
    routed = route(pack, "component", "0999", GRID_STREET_1)
    assert routed.department == "STREET-001"
    assert "last resort" in routed.rule


# --- decide_dispatch -----------------------------------------------------------------------


def local(day: int, hh: int, mm: int = 0, month: int = 3, year: int = 2025) -> datetime:
    return datetime(year, month, day, hh, mm, tzinfo=SHANGHAI)


def test_the_deadline_is_the_class_limit_in_working_time(pack: CityPack) -> None:
    event = decide_dispatch(pack, CASE, 2, "event", "0102", GRID_STREET_1, SINCE)
    assert isinstance(event, CaseDispatched)
    assert event.case_id == CASE
    assert event.version == 3
    assert event.department == "SANITATION"
    # 4 office hours: 17:15–17:30 on Monday, 09:00–12:00 and 13:30–14:15 on Tuesday.
    assert event.deadline == local(4, 14, 15)
    assert event.assumed_years == []
    assert "default owner of event class 0102" in event.rule
    assert event.actor.role is Role.command_centre


def test_dispatch_deadline_follows_the_class_limit(pack: CityPack) -> None:
    lamp = decide_dispatch(pack, CASE, 6, "component", "0118", GRID_STREET_2, SINCE)
    assert lamp.deadline == local(5, 17, 15)  # P2D: two working days of 7 office hours
    assert lamp.version == 7
    assert lamp.department == "ROADS"


def test_dispatch_by_fallback_names_the_fallback_rule(pack: CityPack) -> None:
    variant = _without_department(pack, "SANITATION")
    event = decide_dispatch(variant, CASE, 2, "event", "0102", GRID_STREET_2, SINCE)
    assert event.department == "STREET-002"
    assert "street office" in event.rule
    assert event.deadline == local(4, 14, 15)


def test_an_urgent_report_gets_the_urgent_limit(pack: CityPack) -> None:
    urgent = decide_dispatch(pack, CASE, 2, "event", "0102", GRID_STREET_1, SINCE, urgency="urgent")
    assert urgent.deadline == local(4, 10, 45)  # PT2H: 15 minutes on Monday, then 09:00–10:45
    normal = decide_dispatch(pack, CASE, 2, "event", "0102", GRID_STREET_1, SINCE, urgency="normal")
    assert normal.deadline == local(4, 14, 15)


def test_an_emergency_runs_in_natural_time(pack: CityPack) -> None:
    collapse = decide_dispatch(pack, CASE, 2, "event", "0401", GRID_STREET_1, SINCE)
    assert collapse.deadline == SINCE + timedelta(hours=1)


def test_a_deadline_in_a_year_nobody_supplied_is_flagged_not_refused(pack: CityPack) -> None:
    eve = local(31, 17, month=12, year=2026)  # a Thursday; 2027 is not in chinesecalendar
    event = decide_dispatch(pack, CASE, 2, "event", "0102", GRID_STREET_1, eve)
    # 17:00–17:30, then New Year's Day (a fixed-date holiday, kept off without the year's
    # notice) and the weekend: 3.5 h on Monday 4 January, 09:00–12:00 and 13:30–14:00.
    assert event.deadline == local(4, 14, month=1, year=2027)
    assert event.assumed_years == [2027]


def test_dispatch_and_the_sla_engine_share_one_deadline(pack: CityPack) -> None:
    classes: list[tuple[Kind, str]] = [("event", "0102"), ("event", "0401"), ("component", "0118")]
    for urgency in (None, "urgent"):
        for kind, code in classes:
            expected = pack.sla.deadline(Stage.handle, kind, code, urgency, SINCE)
            assert expected is not None
            event = decide_dispatch(
                pack, CASE, 2, kind, code, GRID_STREET_1, SINCE, None, None, urgency
            )
            assert event.deadline == expected.due


def test_dispatch_is_deterministic(pack: CityPack) -> None:
    first = decide_dispatch(pack, CASE, 2, "event", "0102", GRID_STREET_1, SINCE)
    again = decide_dispatch(pack, CASE, 2, "event", "0102", GRID_STREET_1, SINCE)
    assert first == again
    assert event_id(first) == event_id(again)
    later = decide_dispatch(pack, CASE, 7, "event", "0102", GRID_STREET_1, SINCE)
    assert event_id(later) != event_id(first)


# --- decide_handled ------------------------------------------------------------------------


def test_handled_by_the_wrong_department_is_forbidden() -> None:
    with pytest.raises(Refused) as info:
        decide_handled(_dispatched_case(), Handle(CASE, "WATER", "h-1"))
    assert info.value.why is Why.forbidden
    assert STATUS[info.value.why] == 403
    assert info.value.loc[-1] == "department"
    assert info.value.code == "forbidden"
    assert CASE in info.value.reason


@pytest.mark.parametrize("state", [State.handled, State.filed, State.parked, State.closed])
def test_handled_in_the_wrong_state_is_invalid(state: State) -> None:
    with pytest.raises(InvalidTransition) as info:
        decide_handled(_dispatched_case(state=state), Handle(CASE, "SANITATION", "h-1"))
    assert (info.value.why, info.value.code) == (Why.conflict, "invalid_transition")
    assert info.value.state is state
    assert info.value.transition == "handled"


def test_handled_by_the_right_department() -> None:
    answer = Handle(CASE, "SANITATION", "h-1", "swept", ("https://img.example/a.jpg",))
    event = decide_handled(_dispatched_case(version=4), answer)
    assert isinstance(event, CaseHandled)
    assert event.case_id == CASE
    assert event.version == 5
    assert event.department == "SANITATION"
    assert event.note == "swept"
    assert event.photos == ["https://img.example/a.jpg"]
    assert event.actor.role is Role.department
    assert event.actor.id == "SANITATION/h-1"


# --- react: dispatch's reaction to a filing or a rework --------------------------------------

COMMAND = Actor(role=Role.supervision_centre, id="op-1")


def _filed(version: int = 2) -> CaseFiled:
    return CaseFiled(
        case_id=CASE,
        version=version,
        actor=COMMAND,
        kind="event",
        class_code="0102",
        grid_code=GRID_STREET_1,
    )


def _filed_case(pack: CityPack, **overrides: Any) -> CaseView:
    inner = pack.polygon(GRID_STREET_1).representative_point()
    fields: dict[str, Any] = {
        "version": 2,
        "state": State.filed,
        "department": None,
        "point": Point(lon=round(inner.x, 7), lat=round(inner.y, 7)),
        "urgency": "urgent",
    }
    return _dispatched_case(**(fields | overrides))


def test_a_filing_the_case_still_stands_at_is_dispatched(pack: CityPack) -> None:
    case = _filed_case(pack)
    [dispatched] = core.react(pack, case, _filed(2), SINCE) or []
    # The filing's class and grid, the report's point and urgency (kept in the view).
    expected = decide_dispatch(
        pack, CASE, 2, "event", "0102", GRID_STREET_1, SINCE, case.point, None, "urgent"
    )
    assert dispatched == expected
    assert (dispatched.version, dispatched.deadline) == (3, local(4, 10, 45))


@pytest.mark.parametrize(
    ("state", "version"),
    [
        (State.voided, 3),  # voided at the version after the filing
        (State.dispatched, 3),  # its own dispatch (or one by hand) already claimed
        (State.handled, 4),
        (State.closed, 6),
    ],
)
def test_a_case_that_went_past_the_filing_is_not_dispatched(
    pack: CityPack, state: State, version: int
) -> None:
    """Dispatch acts only on the version the filing made: any other (higher, or not yet
    there) means the filing is not the case's newest fact, and a department must never get
    a case that is not theirs. (The old `superseded` stopped only a higher version.)"""
    assert core.react(pack, _filed_case(pack, state=state, version=version), _filed(2), SINCE) == []


def test_a_view_behind_the_filing_is_not_decided_yet(pack: CityPack) -> None:
    """A head adopted from a projection that had the report but not yet the filing: None,
    so the reaction waits for the head to be adopted again, rather than deciding nothing
    for ever (a real head is never behind an event in the log: its claim came first)."""
    behind = _filed_case(pack, state=State.reported, version=1)
    assert core.react(pack, behind, _filed(2), SINCE) is None


def test_a_rework_the_case_still_stands_at_goes_back_to_its_department(pack: CityPack) -> None:
    case = _dispatched_case(version=7, state=State.rework, department="WATER")
    rework = CaseReworked(case_id=CASE, version=7, actor=COMMAND, reason="not swept")
    [dispatched] = core.react(pack, case, rework, SINCE) or []
    assert dispatched == core.decide_rework_dispatch(pack, case, 7, SINCE)
    assert (dispatched.department, dispatched.version) == ("WATER", 8)
    assert core.react(pack, replace(case, state=State.dispatched, version=8), rework, SINCE) == []
    assert core.react(pack, replace(case, version=6), rework, SINCE) is None  # behind it
