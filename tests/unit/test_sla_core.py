"""The SLA engine's decisions on the demo city's policy: every stage's clock in working time,
the traffic light once per clock, parking, extension, return and rework, the escalation
ladder, explanations, and independence from the order the topics are read in."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridloop.calendar import SHANGHAI
from gridloop.citypack import load_city_pack
from gridloop.citypack.sla import SlaPolicy
from gridloop.config import DEMO_CITY_PACK
from schemas.envelope import event_id
from schemas.events import (
    CaseChecked,
    CaseClosed,
    CaseDispatched,
    CaseExplained,
    CaseExtended,
    CaseFiled,
    CaseHandled,
    CaseParked,
    CaseReported,
    CaseResumed,
    CaseReturned,
    CaseReworked,
    CaseVerified,
    EventData,
    SlaBreach,
    SlaEscalation,
    SlaEvent,
    SlaWarning,
    Stage,
)
from services.sla.core import CaseClocks, StageClock, apply, due_events, next_due, record
from tests.samples import CASE_ID, sample_of

POLICY: SlaPolicy = load_city_pack(DEMO_CITY_PACK).sla
H = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
GRID = "110101001002001"  # community 001002 (Zhide), street 001 (Donghuamen)


def local(d: int, hh: int = 9, mm: int = 0, month: int = 3, year: int = 2025) -> datetime:
    return datetime(year, month, d, hh, mm, tzinfo=SHANGHAI)


TUESDAY = local(4)  # Tuesday 4 March 2025, 09:00


def reported(channel: str = "website", code: str = "0102", **kw: Any) -> CaseReported:
    fields = {"version": 1, "channel": channel, "kind": "event", "class_code": code}
    return sample_of(CaseReported, grid_code=GRID, **(fields | kw))


def dispatched(version: int, deadline: datetime, department: str = "SANITATION") -> CaseDispatched:
    return sample_of(CaseDispatched, version=version, deadline=deadline, department=department)


def fold(
    steps: Iterable[tuple[EventData, datetime]], start: CaseClocks | None = None
) -> CaseClocks:
    state = start or CaseClocks()
    for data, at in steps:
        change = apply(state, data, at, POLICY)
        if change is not None:
            state = change.state
    return state


def mark(state: CaseClocks, events: Sequence[SlaEvent]) -> CaseClocks:
    for event in events:
        state = record(state, event, POLICY) or state
    return state


def clock(state: CaseClocks, stage: Stage) -> StageClock:
    found = state.clock(stage)
    assert found is not None, f"no {stage} clock in {state.clocks}"
    return found


def stages(state: CaseClocks) -> set[Stage]:
    return {c.stage for c in state.clocks}


def at_dispatch() -> CaseClocks:
    """Exposed garbage, dispatched on Tuesday 09:00 with 4 working hours: due 13:30+1h."""
    return fold(
        [
            (reported("supervisor"), TUESDAY),
            (
                sample_of(CaseFiled, version=2, kind="event", class_code="0102", grid_code=GRID),
                TUESDAY,
            ),
            (dispatched(3, local(4, 14, 30)), TUESDAY),
        ]
    )


# --- which stage is on the clock ----------------------------------------------------------------


def test_a_citizen_report_waits_for_verification_and_a_supervisors_for_filing() -> None:
    citizen = fold([(reported("website"), TUESDAY)])
    assert stages(citizen) == {Stage.verify}
    verify = clock(citizen, Stage.verify)
    assert verify.department == "SUPERVISION-CENTRE"
    assert verify.due == local(4, 11)  # PT2H of office hours
    assert verify.warn == local(4, 10, 36)  # 80 % of two hours
    supervisor = fold([(reported("supervisor"), TUESDAY)])
    assert stages(supervisor) == {Stage.file}
    assert clock(supervisor, Stage.file).due == local(4, 10)


def test_each_stage_hands_over_to_the_next() -> None:
    state = fold(
        [
            (reported("hotline"), TUESDAY),
            (sample_of(CaseVerified, version=2), local(4, 10)),
        ]
    )
    assert stages(state) == {Stage.file}
    assert clock(state, Stage.file).due == local(4, 11)
    state = fold([(sample_of(CaseFiled, version=3, grid_code=GRID), local(4, 11, 30))], state)
    assert stages(state) == {Stage.dispatch}
    dispatch = clock(state, Stage.dispatch)
    assert dispatch.department == "COMMAND-CENTRE"
    assert dispatch.due == local(4, 14)  # half an hour before lunch, half after 13:30
    state = fold([(dispatched(4, local(5, 10)), local(4, 12))], state)
    assert stages(state) == {Stage.handle}
    state = fold(
        [(sample_of(CaseHandled, version=5, department="SANITATION"), local(4, 15))], state
    )
    assert stages(state) == {Stage.check}
    assert clock(state, Stage.check).due == local(5, 10, 30)  # 4 office hours
    state = fold([(sample_of(CaseChecked, version=6), local(4, 16))], state)
    assert stages(state) == set()
    closing = apply(state, sample_of(CaseClosed, version=7), local(4, 16, 5), POLICY)
    assert closing is not None
    assert closing.closed_case == local(4, 16, 5) - TUESDAY


def test_the_handling_deadline_is_the_one_the_department_was_told() -> None:
    handle = clock(at_dispatch(), Stage.handle)
    assert handle.department == "SANITATION"
    assert handle.due == local(4, 14, 30)
    assert handle.limit == 4 * H  # 09:00–12:00 and 13:30–14:30 in office hours
    assert handle.warn == local(4, 13, 42)  # 3.2 working hours
    assert handle.opened == 3


def test_an_emergency_runs_in_natural_time() -> None:
    night = local(4, 22)
    state = fold([(reported("supervisor", code="0401"), night)])
    assert clock(state, Stage.file).due == night + timedelta(minutes=15)


# --- the traffic light, once per clock ----------------------------------------------------------


def test_yellow_at_80_percent_then_red_past_100_each_once() -> None:
    state = at_dispatch()
    handle = clock(state, Stage.handle)
    assert handle.warn is not None and handle.due is not None
    assert due_events(CASE_ID, state, handle.warn, POLICY) == []  # exactly 80 %: still green
    [warning] = due_events(CASE_ID, state, handle.warn + MINUTE, POLICY)
    assert isinstance(warning, SlaWarning)
    assert (warning.stage, warning.case_version, warning.department) == (
        Stage.handle,
        3,
        "SANITATION",
    )
    assert warning.deadline == handle.due
    state = mark(state, [warning])
    assert clock(state, Stage.handle).light == "yellow"
    assert due_events(CASE_ID, state, handle.due, POLICY) == []  # warned, not yet red
    [breach] = due_events(CASE_ID, state, handle.due + MINUTE, POLICY)
    assert isinstance(breach, SlaBreach)
    state = mark(state, [breach])
    assert clock(state, Stage.handle).light == "red"
    later = [e for e in due_events(CASE_ID, state, handle.due + 30 * H, POLICY)]
    assert not any(isinstance(e, SlaWarning | SlaBreach) and e.stage is Stage.handle for e in later)
    assert record(state, breach, POLICY) is None  # a repeat read back changes nothing
    assert record(state, warning, POLICY) is None


def test_a_breach_due_with_its_warning_goes_alone() -> None:
    state = at_dispatch()
    events = due_events(CASE_ID, state, local(4, 15), POLICY)
    assert [type(e) for e in events] == [SlaBreach]
    state = mark(state, events)
    assert clock(state, Stage.handle).warned  # red implies yellow


def test_ids_are_per_case_stage_and_opening_version() -> None:
    state = at_dispatch()
    [breach] = due_events(CASE_ID, state, local(4, 15), POLICY)
    again = due_events(CASE_ID, fold([], state), local(4, 16), POLICY)[0]
    assert event_id(breach) == event_id(again)  # recomputed later: the same fact
    restarted = fold(
        [(sample_of(CaseReturned, version=4, department="SANITATION"), local(4, 15))], state
    )
    restarted = fold([(dispatched(5, local(5, 12)), local(4, 16))], restarted)
    [second] = due_events(CASE_ID, restarted, local(5, 13, 31), POLICY)
    assert second.case_version == 5
    assert event_id(second) != event_id(breach)


# --- parking, extension, return, rework ---------------------------------------------------------


def test_parking_pauses_the_clock_and_resuming_restarts_it() -> None:
    state = fold([(sample_of(CaseParked, version=4), local(4, 10))], at_dispatch())
    handle = clock(state, Stage.handle)
    assert not handle.running
    assert handle.used == H
    assert due_events(CASE_ID, state, local(20, 9), POLICY) == []  # a paused clock never fires
    assert next_due(state, POLICY) is None
    # Resumed on Thursday at 09:00: three working hours are left.
    state = fold([(sample_of(CaseResumed, version=5), local(6, 9))], state)
    handle = clock(state, Stage.handle)
    assert handle.running
    assert handle.due == local(6, 12)
    assert handle.warn == local(6, 11, 12)  # 3.2 h of 4 in all, 1 h used before parking


def test_an_extension_moves_the_deadline() -> None:
    later = local(6, 17, 30)
    state = fold(
        [(sample_of(CaseExtended, version=4, deadline=later), local(4, 10))], at_dispatch()
    )
    handle = clock(state, Stage.handle)
    assert handle.due == later
    assert handle.limit == 3 * 7 * H  # Tuesday to Thursday, whole days
    assert due_events(CASE_ID, state, local(4, 15), POLICY) == []  # the old deadline is gone
    assert [type(e) for e in due_events(CASE_ID, state, later + MINUTE, POLICY)] == [SlaBreach]


def test_an_extension_while_parked_counts_from_the_resumption() -> None:
    state = fold(
        [
            (sample_of(CaseParked, version=4), local(4, 10)),
            (sample_of(CaseExtended, version=5, deadline=local(4, 17, 30)), local(4, 11)),
        ],
        at_dispatch(),
    )
    handle = clock(state, Stage.handle)
    assert not handle.running
    assert handle.limit == H + 5 * H  # used before parking, then 11:00 to the new deadline


def test_a_return_restarts_the_dispatch_clock() -> None:
    state = fold(
        [(sample_of(CaseReturned, version=4, department="SANITATION"), local(4, 10))], at_dispatch()
    )
    assert stages(state) == {Stage.dispatch}
    dispatch = clock(state, Stage.dispatch)
    assert dispatch.opened == 4
    assert dispatch.due == local(4, 11)


def test_rework_goes_back_to_the_command_centre_s_dispatch_clock() -> None:
    """Issue 19: the department's handling time starts when the case is dispatched to it
    again, not at the rework; until then the case waits on the command centre."""
    state = fold(
        [
            (sample_of(CaseHandled, version=4, department="SANITATION"), local(4, 10)),
            (sample_of(CaseChecked, version=5, passed=False), local(4, 11)),
            (sample_of(CaseReworked, version=6), local(4, 11)),
        ],
        at_dispatch(),
    )
    assert stages(state) == {Stage.dispatch}
    dispatch = clock(state, Stage.dispatch)
    assert (dispatch.opened, dispatch.department) == (6, "COMMAND-CENTRE")
    assert dispatch.due == local(4, 12)  # PT1H
    # Re-dispatched at 13:30 with 4 office hours from then (dispatch reckons them so):
    # the department gets them whole, and the lag was the command centre's.
    state = fold([(dispatched(7, local(4, 17, 30)), local(4, 13, 30))], state)
    handle = clock(state, Stage.handle)
    assert (handle.opened, handle.due, handle.limit) == (7, local(4, 17, 30), 4 * H)
    assert stages(state) == {Stage.handle}


# --- escalation up the ladder -------------------------------------------------------------------


def breached() -> CaseClocks:
    state = at_dispatch()
    return mark(state, due_events(CASE_ID, state, local(4, 15), POLICY))


def test_a_handling_breach_climbs_the_ladder_with_its_grace_periods() -> None:
    state = breached()
    due = clock(state, Stage.handle).due
    assert due == local(4, 14, 30)
    [community] = [
        e for e in due_events(CASE_ID, state, local(4, 15), POLICY) if isinstance(e, SlaEscalation)
    ]
    assert (community.tier, community.notify_department) == ("community", "COMMUNITY-001002")
    assert (community.department, community.case_version) == ("SANITATION", 3)
    state = mark(state, [community])
    state = fold([(explained(3), local(4, 16))], state)  # explaining does not stop the ladder
    # Street after one working day: Wednesday 14:30.
    assert next_due(state, POLICY) == local(5, 14, 30)
    assert not any(
        isinstance(e, SlaEscalation) for e in due_events(CASE_ID, state, local(5, 14, 30), POLICY)
    )
    [street] = [
        e
        for e in due_events(CASE_ID, state, local(5, 14, 31), POLICY)
        if isinstance(e, SlaEscalation)
    ]
    assert (street.tier, street.notify_department) == ("street", "STREET-001")
    state = mark(state, [street])
    # District after three working days (Friday 14:30), city after five (next Tuesday).
    assert next_due(state, POLICY) == local(7, 14, 30)
    rest = [
        e for e in due_events(CASE_ID, state, local(11, 15), POLICY) if isinstance(e, SlaEscalation)
    ]
    assert [(e.tier, e.notify_department) for e in rest] == [
        ("district", "DISTRICT-110101"),
        ("city", "CITY-110000"),
    ]
    state = mark(state, rest)
    assert not any(
        isinstance(e, SlaEscalation) for e in due_events(CASE_ID, state, local(31, 9), POLICY)
    )
    assert len({event_id(e) for e in [community, street, *rest]}) == 4


def test_escalation_waits_for_its_breach_and_stops_when_handled() -> None:
    state = at_dispatch()
    assert not any(
        isinstance(e, SlaEscalation) for e in due_events(CASE_ID, state, local(20), POLICY)
    )
    state = fold(
        [(sample_of(CaseHandled, version=4, department="SANITATION"), local(4, 16))], breached()
    )
    assert not any(
        isinstance(e, SlaEscalation) for e in due_events(CASE_ID, state, local(20), POLICY)
    )


# --- explanations -------------------------------------------------------------------------------


def explained(version: int) -> CaseExplained:
    return sample_of(CaseExplained, case_version=version, department="SANITATION")


def test_an_unexplained_breach_becomes_overdue_itself() -> None:
    state = breached()
    explain = clock(state, Stage.explain)
    assert (explain.opened, explain.department) == (3, "SANITATION")
    assert explain.due == local(5, 14, 30)  # one working day after the missed deadline
    events = due_events(CASE_ID, state, local(5, 14, 31), POLICY)
    [late] = [e for e in events if e.stage is Stage.explain]
    assert isinstance(late, SlaBreach)
    assert late.department == "SANITATION"


def test_an_explanation_closes_the_explanation_clock() -> None:
    change = apply(breached(), explained(3), local(4, 16), POLICY)
    assert change is not None
    assert change.state.clock(Stage.explain) is None
    assert apply(change.state, explained(3), local(4, 17), POLICY) is None  # repeated


def test_an_explanation_given_before_the_breach_is_read_back_counts() -> None:
    state = fold([(explained(3), local(4, 14))], at_dispatch())
    state = mark(state, due_events(CASE_ID, state, local(4, 15), POLICY))
    assert clock(state, Stage.handle).breached
    assert state.clock(Stage.explain) is None


# --- calendar years nobody supplied -------------------------------------------------------------


def test_a_deadline_in_an_unsupplied_year_is_flagged() -> None:
    eve = local(31, 17, month=12, year=2026)
    state = fold([(reported("website"), eve)])
    verify = clock(state, Stage.verify)
    assert verify.assumed == (2027,)
    [breach] = due_events(CASE_ID, state, local(5, 9, month=1, year=2027), POLICY)
    assert breach.assumed_years == [2027]
    current = fold([(reported("website"), TUESDAY)])
    assert clock(current, Stage.verify).assumed == ()


# --- the due-time index agrees with the decisions -----------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=60 * 24 * 14))
def test_nothing_is_due_before_next_due_and_something_after(minutes: int) -> None:
    state = breached()
    for _ in range(4):  # walk through warnings, breaches and escalations
        when = next_due(state, POLICY)
        assert when is not None
        assert due_events(CASE_ID, state, when, POLICY) == []
        events = due_events(CASE_ID, state, when + MINUTE, POLICY)
        assert events
        state = mark(state, events)
    probe = TUESDAY + timedelta(minutes=minutes)
    state = at_dispatch()
    when = next_due(state, POLICY)
    assert when is not None
    assert bool(due_events(CASE_ID, state, probe, POLICY)) == (probe > when)


# --- persistence and order ----------------------------------------------------------------------


def test_json_round_trip() -> None:
    for state in (
        CaseClocks(),
        at_dispatch(),
        breached(),
        fold([(sample_of(CaseParked, version=4), local(4, 10))], at_dispatch()),
    ):
        assert CaseClocks.from_json(json.loads(json.dumps(state.to_json()))) == state


def test_a_late_event_keeps_its_facts_but_moves_no_clock() -> None:
    state = fold([(dispatched(3, local(4, 14, 30)), TUESDAY)])
    state = fold([(reported("website"), TUESDAY)], state)
    assert (state.kind, state.class_code, state.grid_code) == ("event", "0102", GRID)
    assert stages(state) == {Stage.handle}  # no verify clock for a case long past it


LIFECYCLE: list[tuple[EventData, datetime]] = [
    (reported("website"), TUESDAY),
    (sample_of(CaseVerified, version=2), local(4, 9, 30)),
    (
        sample_of(CaseFiled, version=3, kind="event", class_code="0102", grid_code=GRID),
        local(4, 10),
    ),
    (dispatched(4, local(4, 15)), local(4, 10)),
    (sample_of(CaseParked, version=5), local(4, 11)),
    (sample_of(CaseResumed, version=6), local(4, 14)),
    (sample_of(CaseHandled, version=7, department="SANITATION"), local(4, 16)),
]
TOPIC_OF = {1: "r", 2: "v", 3: "r", 4: "d", 5: "d", 6: "d", 7: "c"}


@st.composite
def interleavings(draw: st.DrawFn) -> list[tuple[EventData, datetime]]:
    """Each topic in order, the topics interleaved any way."""
    queues = {t: [s for s in LIFECYCLE if TOPIC_OF[s[0].version] == t] for t in "rvdc"}  # type: ignore[attr-defined]
    out: list[tuple[EventData, datetime]] = []
    while any(queues.values()):
        topic = draw(st.sampled_from(sorted(t for t, q in queues.items() if q)))
        out.append(queues[topic].pop(0))
    return out


@settings(max_examples=100, deadline=None)
@given(interleavings())
def test_the_outcome_does_not_depend_on_the_order_topics_are_read(
    steps: list[tuple[EventData, datetime]],
) -> None:
    in_order = fold(LIFECYCLE)
    shuffled = fold(steps)
    assert shuffled.version == in_order.version == 7
    assert stages(shuffled) == stages(in_order) == {Stage.check}
    assert (shuffled.kind, shuffled.class_code, shuffled.grid_code) == ("event", "0102", GRID)


@pytest.mark.parametrize("stage", [Stage.verify, Stage.file, Stage.dispatch, Stage.check])
def test_every_stage_can_breach(stage: Stage) -> None:
    steps: dict[Stage, list[tuple[EventData, datetime]]] = {
        Stage.verify: [(reported("website"), TUESDAY)],
        Stage.file: [(reported("supervisor"), TUESDAY)],
        Stage.dispatch: [
            (reported("supervisor"), TUESDAY),
            (sample_of(CaseFiled, version=2, grid_code=GRID), TUESDAY),
        ],
        Stage.check: [*LIFECYCLE],
    }
    state = fold(steps[stage])
    due = clock(state, stage).due
    assert due is not None
    [breach] = [e for e in due_events(CASE_ID, state, due + MINUTE, POLICY) if e.stage is stage]
    assert isinstance(breach, SlaBreach)


def _dispatched_at_night(deadline: datetime) -> CaseClocks:
    night = local(4, 23)
    return fold(
        [
            (reported("supervisor"), night),
            (
                sample_of(CaseFiled, version=2, kind="event", class_code="0102", grid_code=GRID),
                night,
            ),
            (dispatched(3, deadline), night),
        ]
    )


def test_a_deadline_reckoned_at_night_leaves_the_office_hours_of_the_limit() -> None:
    """Dispatch reckons the deadline with the policy, as the engine does: 4 office hours
    from 23:00 are 09:00–12:00 and 13:30–14:30 the next day, so nothing warns at night."""
    night = local(4, 23)
    reckoned = POLICY.deadline(Stage.handle, "event", "0102", None, night)
    assert reckoned is not None and reckoned.due == local(5, 14, 30)
    state = _dispatched_at_night(reckoned.due)
    handle = clock(state, Stage.handle)
    assert (handle.due, handle.limit) == (local(5, 14, 30), 4 * H)
    assert handle.warn == local(5, 13, 42)
    assert [
        e for e in due_events(CASE_ID, state, night + 5 * H, POLICY) if e.stage is Stage.handle
    ] == []


def test_the_deadline_the_department_was_told_is_kept_as_told() -> None:
    """A deadline given by hand (here 4 natural hours from 23:00) is the one that counts:
    the engine no longer stretches it to the class's limit; it warns at 80 % of the working
    time it leaves (none at night: at once), and breaches right after it."""
    night = local(4, 23)
    state = _dispatched_at_night(night + 4 * H)
    handle = clock(state, Stage.handle)
    assert handle.due == night + 4 * H
    assert handle.limit == timedelta(0)
    [breach] = [
        e for e in due_events(CASE_ID, state, night + 5 * H, POLICY) if e.stage is Stage.handle
    ]
    assert isinstance(breach, SlaBreach) and breach.deadline == night + 4 * H


def test_a_late_dispatch_is_the_command_centres_and_leaves_the_department_its_time() -> None:
    """Filed at 09:00, dispatched at 11:00 with the deadline reckoned from 11:00 (16:30):
    the dispatch clock (due 10:00) breached, the handling clock has its 4 hours whole."""
    filed = fold(
        [
            (reported("supervisor"), TUESDAY),
            (
                sample_of(CaseFiled, version=2, kind="event", class_code="0102", grid_code=GRID),
                TUESDAY,
            ),
        ]
    )
    [late] = due_events(CASE_ID, filed, local(4, 10, 1), POLICY)
    assert isinstance(late, SlaBreach) and late.stage is Stage.dispatch
    assert late.department == "COMMAND-CENTRE"
    reckoned = POLICY.deadline(Stage.handle, "event", "0102", None, local(4, 11))
    assert reckoned is not None and reckoned.due == local(4, 16, 30)
    state = fold([(dispatched(3, reckoned.due), local(4, 11))], mark(filed, [late]))
    assert clock(state, Stage.handle).limit == 4 * H


def test_a_resumption_runs_to_the_deadline_it_carries() -> None:
    parked = fold([(sample_of(CaseParked, version=4), local(4, 10))], at_dispatch())
    told = local(4, 15, 30)
    state = fold([(sample_of(CaseResumed, version=5, deadline=told), local(4, 11))], parked)
    assert clock(state, Stage.handle).due == told
    # Its own reckoning (a resumption without one) is the same: 3 office hours were left.
    state = fold([(sample_of(CaseResumed, version=5), local(4, 11))], parked)
    assert clock(state, Stage.handle).due == told


def test_an_urgent_report_runs_on_the_urgent_limits() -> None:
    state = fold([(reported("supervisor", urgency="urgent"), TUESDAY)])
    assert state.urgency == "urgent"
    assert clock(state, Stage.file).due == local(4, 9, 30)  # PT30M, not PT1H
