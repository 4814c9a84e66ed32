"""Intake decisions: reports become cases, verifications file or void them, checks close them
or send them back for rework."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridloop.access import Principal
from gridloop.access import Role as Access
from gridloop.calendar import SHANGHAI
from gridloop.cases import CaseView
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.contacts import contact_id
from gridloop.errors import STATUS
from gridloop.lifecycle import InvalidTransition, State
from gridloop.refusal import Refused
from schemas.envelope import event_id
from schemas.events import (
    Actor,
    CaseChecked,
    CaseClosed,
    CaseFiled,
    CaseReported,
    CaseReworked,
    CaseVerified,
    CaseVoided,
    Channel,
    Role,
    Stage,
)
from services.intake.commands import Check, Verify
from services.intake.core import decide_check, decide_verification
from services.intake.reporting import decide_report
from services.intake.requests import ReportIn, report_of
from services.sla.core import apply

CASE = "C-20250301-0042"
NOW = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)  # 01:30 on 2 March in Beijing
SUPERVISOR = Principal(Access.supervisor, "sup-0042")
CITIZEN = Principal(Access.public, "anonymous")
HOTLINE = Principal(Access.hotline, "op-3")
CENTRE = Principal(Access.supervision_centre, "centre-1")
SUP7 = Principal(Access.supervisor, "sup-7")
SUP9 = Principal(Access.supervisor, "sup-9")
INSIDE = {"lon": 116.4015, "lat": 39.9205}  # grid 110101001001002
GRID = "110101001001002"


@pytest.fixture(scope="module")
def pack() -> CityPack:
    return load_city_pack(DEMO_CITY_PACK)


def _report(**overrides: Any) -> ReportIn:
    fields: dict[str, Any] = {
        "channel": "supervisor",
        "kind": "component",
        "class_code": "0101",
        "point": INSIDE,
        "description": "井盖破损 manhole cover broken",
        "reporter": {"id": "sup-0042", "name": "张伟"},
    }
    return ReportIn.model_validate(fields | overrides)


WHO = {"supervisor": SUPERVISOR, "website": CITIZEN, "hotline": HOTLINE}


def _decide(report: ReportIn, pack: CityPack, case_id: str = CASE, **kw: Any) -> list[Any]:
    who = kw.pop("who", WHO[report.channel.value])
    return decide_report(pack, report_of(report, case_id, who), kw.pop("now", NOW), **kw)


def _case(state: State, version: int, **overrides: Any) -> CaseView:
    fields: dict[str, Any] = {
        "case_id": CASE,
        "state": state,
        "version": version,
        "kind": "component",
        "class_code": "0101",
        "grid_code": GRID,
    }
    return CaseView(**(fields | overrides))


def _rejected(excinfo: pytest.ExceptionInfo[Refused], status: int, last_loc: str) -> Refused:
    exc = excinfo.value
    assert STATUS[exc.why] == status
    assert exc.loc[-1] == last_loc
    assert exc.reason
    return exc


# --- reports -------------------------------------------------------------------------------


def test_supervisor_report_is_reported_and_filed(pack: CityPack) -> None:
    events = _decide(_report(), pack, case_number="B0101-20260302-0001")
    assert [type(e) for e in events] == [CaseReported, CaseFiled]
    reported, filed = events
    assert isinstance(reported, CaseReported)
    assert isinstance(filed, CaseFiled)
    assert (reported.version, filed.version) == (1, 2)
    assert reported.case_id == filed.case_id == CASE
    assert reported.grid_code == filed.grid_code == GRID
    assert (filed.kind, filed.class_code) == ("component", "0101")
    assert reported.channel is Channel.supervisor
    assert reported.point.lon == INSIDE["lon"]
    assert reported.reporter.name is None  # in the contact store, by reference
    assert reported.reporter.contact == contact_id(CASE)
    assert reported.actor == Actor(role=Role.supervisor, id="sup-0042")
    assert filed.actor.role is Role.system  # filed by the pack's rule
    assert filed.case_number == "B0101-20260302-0001"
    assert filed.reason
    assert reported.verification_due is None  # a supervisor's report needs no verification


@pytest.mark.parametrize(
    ("channel", "role"), [("website", Role.citizen), ("hotline", Role.hotline)]
)
def test_citizen_report_waits_for_verification(pack: CityPack, channel: str, role: Role) -> None:
    reporter = {"phone": "13900000000"} if channel == "hotline" else {}
    events = _decide(_report(channel=channel, reporter=reporter), pack, CASE)
    assert len(events) == 1
    reported = events[0]
    assert isinstance(reported, CaseReported)
    assert reported.version == 1
    assert reported.grid_code == GRID
    assert reported.actor.role is role
    if channel == "website":  # anonymous: the channel stands in for the person
        assert reported.actor.id == "website"
    else:
        assert reported.actor.id == "op-3"
    # a verification task for the supervisor of grid …001002, due within the pack's limit:
    # 2 office hours from 01:30 on Monday 2 March are 09:00–11:00 (Beijing). A hotline
    # call about a water manhole cover is in the hotline's `utilities` time class, whose
    # clock runs around the clock (issue 18 item 4): 03:30.
    assert reported.verifier == "SUP-0001"
    due = (3, 30) if channel == "hotline" else (11, 0)
    assert reported.verification_due == datetime(2026, 3, 2, *due, tzinfo=SHANGHAI)


def _hotline(at: datetime, pack: CityPack, **overrides: Any) -> CaseReported:
    fields = {"channel": "hotline", "kind": "event", "class_code": "0102"}
    report = _report(**(fields | {"reporter": {"phone": "13900000000"}} | overrides))
    [reported] = _decide(report, pack, now=at)
    assert isinstance(reported, CaseReported)
    return reported


@pytest.mark.parametrize(
    ("at", "urgency", "due"),
    [
        # Issue 19: 17:00 on Wednesday 30 September 2026 leaves half an office hour; 1–7
        # October are the National Day and Mid-Autumn holidays; 1.5 h on 8 October.
        ((2026, 9, 30, 17, 0), None, (2026, 10, 8, 10, 30)),
        # 11:00 on a Monday: one hour to noon, lunch 12:00–13:30, one more to 14:30.
        ((2026, 3, 2, 11, 0), None, (2026, 3, 2, 14, 30)),
        # The urgent class's shorter limit (sla.yaml: verify PT30M).
        ((2026, 3, 2, 11, 0), "urgent", (2026, 3, 2, 11, 30)),
        # An urgent hotline call is a hotline emergency (issue 18 item 4): its time class's
        # clock runs around the clock, so 30 natural minutes.
        ((2026, 3, 2, 17, 20), "urgent", (2026, 3, 2, 17, 50)),
    ],
)
def test_the_verification_task_is_due_on_the_working_clock(
    pack: CityPack, at: tuple[int, int, int, int, int], urgency: str | None, due: tuple[int, ...]
) -> None:
    reported = _hotline(_local(*at), pack, urgency=urgency)
    assert reported.verification_due == _local(*due)


def _local(year: int, month: int, day: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(year, month, day, hh, mm, tzinfo=SHANGHAI)


def test_an_emergencys_verification_runs_in_natural_time(pack: CityPack) -> None:
    night = datetime(2026, 3, 2, 23, 0, tzinfo=SHANGHAI)
    reported = _hotline(night, pack, class_code="0401")  # road collapse: verify PT15M, 24/7
    assert reported.verification_due == night + timedelta(minutes=15)


def test_the_verification_task_and_the_sla_engine_show_one_deadline(pack: CityPack) -> None:
    for urgency in (None, "urgent"):
        at = datetime(2026, 9, 30, 17, 0, tzinfo=SHANGHAI)
        reported = _hotline(at, pack, urgency=urgency)
        change = apply(None, reported, at, pack.sla)
        assert change is not None
        verify = change.state.clock(Stage.verify)
        assert verify is not None and verify.due == reported.verification_due


def test_citizen_report_keeps_the_reporter_id(pack: CityPack) -> None:
    events = _decide(_report(channel="website", reporter={"id": "u-7"}), pack, CASE)
    assert events[0].actor.id == "u-7"


def test_event_class_report_is_located_too(pack: CityPack) -> None:
    point = {"lon": 116.4075, "lat": 39.9201}
    events = _decide(_report(kind="event", class_code="0505", point=point), pack, CASE)
    filed = events[-1]
    assert isinstance(filed, CaseFiled)
    assert (filed.kind, filed.class_code, filed.grid_code) == ("event", "0505", "110101002002002")


def test_unknown_class_is_rejected(pack: CityPack) -> None:
    with pytest.raises(Refused) as info:
        _decide(_report(class_code="9999"), pack, CASE)
    exc = _rejected(info, 422, "class_code")
    assert "9999" in exc.reason
    assert exc.code == "unknown_class"


def test_class_of_the_other_kind_is_rejected(pack: CityPack) -> None:
    """0118 is a component class only: as an event it does not exist."""
    with pytest.raises(Refused) as info:
        _decide(_report(kind="event", class_code="0118"), pack, CASE)
    _rejected(info, 422, "class_code")


def test_point_outside_every_grid_is_rejected(pack: CityPack) -> None:
    with pytest.raises(Refused) as info:
        _decide(_report(point={"lon": 116.3, "lat": 39.9}), pack, CASE)
    exc = _rejected(info, 422, "point")
    assert exc.code == "outside_grids"
    assert "116.3" in exc.reason


def test_a_supervisor_report_is_the_credential_holder_s(pack: CityPack) -> None:
    events = _decide(_report(reporter={"name": "张伟"}), pack, CASE)
    reported = events[0]
    assert isinstance(reported, CaseReported)
    assert reported.actor.id == reported.reporter.id == "sup-0042"


def test_report_event_ids_are_deterministic(pack: CityPack) -> None:
    first = _decide(_report(), pack, CASE)
    again = _decide(_report(), pack, CASE, now=NOW + timedelta(seconds=5))
    ids = [event_id(e) for e in first]
    assert ids == [event_id(e) for e in again]
    assert len(set(ids)) == 2
    other = _decide(_report(), pack, "C-20250301-0043")
    assert not set(ids) & {event_id(e) for e in other}


# --- verification --------------------------------------------------------------------------


def test_confirmed_verification_verifies_and_files() -> None:
    answer = Verify(CASE, SUP7, confirmed=True, note="seen it")
    events = decide_verification(_case(State.reported, 3), answer)
    assert [type(e) for e in events] == [CaseVerified, CaseFiled]
    verified, filed = events
    assert isinstance(verified, CaseVerified)
    assert isinstance(filed, CaseFiled)
    assert (verified.version, filed.version) == (4, 5)
    assert verified.note == "seen it"
    assert (filed.kind, filed.class_code, filed.grid_code) == ("component", "0101", GRID)
    assert verified.actor == Actor(role=Role.supervisor, id="sup-7")
    assert filed.actor.role is Role.system
    for event in events:
        assert event.case_id == CASE
    again = decide_verification(_case(State.reported, 3), answer)
    assert [event_id(e) for e in events] == [event_id(e) for e in again]


def test_refuted_verification_voids() -> None:
    answer = Verify(CASE, SUP7, confirmed=False, note="nothing there")
    events = decide_verification(_case(State.reported, 1), answer)
    assert len(events) == 1
    voided = events[0]
    assert isinstance(voided, CaseVoided)
    assert voided.version == 2
    assert voided.reason == "nothing there"


def test_refuted_verification_without_note_still_has_a_reason() -> None:
    answer = Verify(CASE, SUP7, confirmed=False)
    (voided,) = decide_verification(_case(State.reported, 1), answer)
    assert voided.reason


@pytest.mark.parametrize("state", [State.filed, State.dispatched, State.closed])
def test_verification_of_a_case_past_reported_is_invalid(state: State) -> None:
    answer = Verify(CASE, SUP7, confirmed=True)
    with pytest.raises(InvalidTransition) as info:
        decide_verification(_case(state, 2), answer)
    assert info.value.state is state
    assert info.value.transition == "verified"


def test_refuting_a_closed_case_is_invalid() -> None:
    answer = Verify(CASE, SUP7, confirmed=False)
    with pytest.raises(InvalidTransition):
        decide_verification(_case(State.closed, 8), answer)


# --- check ---------------------------------------------------------------------------------


def test_passed_check_closes() -> None:
    answer = Check(CASE, SUP9, passed=True)
    events = decide_check(_case(State.handled, 5), answer)
    assert [type(e) for e in events] == [CaseChecked, CaseClosed]
    checked, closed = events
    assert isinstance(checked, CaseChecked)
    assert checked.passed is True
    assert (checked.version, closed.version) == (6, 7)
    assert closed.actor.id == "sup-9"


def test_failed_check_sends_back_for_rework() -> None:
    answer = Check(CASE, SUP9, passed=False, note="still broken")
    events = decide_check(_case(State.handled, 5), answer)
    assert [type(e) for e in events] == [CaseChecked, CaseReworked]
    checked, rework = events
    assert isinstance(checked, CaseChecked)
    assert checked.passed is False
    assert checked.note == "still broken"
    assert (checked.version, rework.version) == (6, 7)
    assert rework.reason == "still broken"
    assert len({event_id(e) for e in events}) == 2


@pytest.mark.parametrize("state", [State.dispatched, State.filed, State.checked])
def test_check_of_an_unhandled_case_is_invalid(state: State) -> None:
    with pytest.raises(InvalidTransition) as info:
        decide_check(_case(state, 4), Check(CASE, SUP9, passed=True))
    assert info.value.state is state
    assert info.value.transition == "checked"
