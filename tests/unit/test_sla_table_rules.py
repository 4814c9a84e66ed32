"""What the SLA engine keeps in its table, marks on it and measures, decided by the core: a
finished case leaves the table unless a clock of it still runs, acknowledged events are
marked in order (and a repeat changes nothing), and only stages really done are timed."""

from __future__ import annotations

from datetime import timedelta

from gridloop.calendar import ZERO
from schemas.events import (
    CaseClosed,
    CaseHandled,
    CaseMerged,
    CaseParked,
    CaseReturned,
    CaseVoided,
    EventData,
    SlaBreach,
    SlaEscalation,
    Stage,
)
from services.sla.core import (
    CaseClocks,
    Change,
    Closed,
    StageClock,
    apply,
    due_events,
    from_text,
    leaves_table,
    marked,
    measured,
    to_text,
)
from tests.samples import CASE_ID, sample_of
from tests.unit.test_sla_core import (
    POLICY,
    at_dispatch,
    breached,
    explained,
    fold,
    local,
)


def changed(state: CaseClocks, data: EventData, hour: int = 16) -> Change:
    change = apply(state, data, local(4, hour), POLICY)
    assert change is not None
    return change


def test_table_text_round_trips_and_nothing_stored_is_none() -> None:
    for state in (CaseClocks(), at_dispatch(), breached()):
        assert from_text(to_text(state)) == state
    assert " " not in to_text(breached())  # compact: a million of them stay in memory
    assert from_text(None) is None
    assert from_text("") is None


def test_a_closed_voided_or_merged_case_leaves_the_table() -> None:
    for done in (
        sample_of(CaseClosed, version=4),
        sample_of(CaseVoided, version=4),
        sample_of(CaseMerged, version=4),
    ):
        change = changed(at_dispatch(), done)
        assert change.state.clocks == ()
        assert leaves_table(change, done)


def test_a_closed_case_still_owing_its_explanation_stays() -> None:
    closed = sample_of(CaseClosed, version=4)
    change = changed(breached(), closed)
    assert [c.stage for c in change.state.clocks] == [Stage.explain]
    assert not leaves_table(change, closed)


def test_a_case_on_its_way_stays_even_with_no_clock() -> None:
    parked = sample_of(CaseParked, version=4)
    change = changed(CaseClocks(version=3), parked)  # nothing was on the clock
    assert change.state.clocks == ()
    assert not leaves_table(change, parked)


def test_acknowledged_events_are_marked_in_order() -> None:
    state = at_dispatch()
    [breach] = due_events(CASE_ID, state, local(4, 15), POLICY)
    assert isinstance(breach, SlaBreach)
    after = marked(state, [breach], POLICY)
    handle = after.clock(Stage.handle)
    assert handle is not None and handle.breached and handle.warned
    assert after.clock(Stage.explain) is not None  # the breach asks for an explanation
    [community] = [
        e for e in due_events(CASE_ID, after, local(4, 15), POLICY) if isinstance(e, SlaEscalation)
    ]
    both = marked(state, [breach, community], POLICY)  # the escalation after its breach
    assert both.clock(Stage.handle) == StageClock(**(vars(handle) | {"tiers": 1}))


def test_marking_what_is_marked_already_gives_the_same_state() -> None:
    state = at_dispatch()
    events = due_events(CASE_ID, state, local(4, 15), POLICY)
    once = marked(state, events, POLICY)
    assert marked(once, events, POLICY) is once
    assert marked(state, [], POLICY) is state
    # An event of a clock since restarted (returned, dispatched again) marks nothing.
    returned = fold([(sample_of(CaseReturned, version=4), local(4, 16))], state)
    assert marked(returned, events, POLICY) is returned


def test_a_handled_case_times_its_handling_with_the_share_of_its_limit() -> None:
    handled = sample_of(CaseHandled, version=4, department="SANITATION")
    [done] = measured(changed(at_dispatch(), handled, hour=13), handled)
    assert (done.department, done.stage) == ("SANITATION", Stage.handle)
    # 09:00 to 12:00, then the lunch break: three of its four office hours.
    assert (done.used, done.share) == (timedelta(hours=3), 0.75)


def test_a_return_or_a_closure_stops_handling_undone_and_times_nothing_of_it() -> None:
    for stop in (sample_of(CaseReturned, version=4), sample_of(CaseClosed, version=4)):
        change = changed(at_dispatch(), stop)
        assert [c.clock.stage for c in change.closed] == [Stage.handle]
        assert measured(change, stop) == []


def test_an_explanation_is_not_a_stage_of_the_loop() -> None:
    change = changed(breached(), explained(3))
    assert [c.clock.stage for c in change.closed] == [Stage.explain]
    assert measured(change, explained(3)) == []


def test_a_stage_with_no_limit_is_timed_without_a_share() -> None:
    unlimited = StageClock(Stage.file, 2, "SUPERVISION-CENTRE", ZERO)
    change = Change(CaseClocks(), (Closed(unlimited, timedelta(minutes=5)),))
    [done] = measured(change, sample_of(CaseClosed, version=3))
    assert (done.used, done.share) == (timedelta(minutes=5), None)
