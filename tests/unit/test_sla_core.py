"""Deadline bookkeeping: clocks start and stop by case version, breaches fire once per
dispatch, and the outcome does not depend on the order the topics are read in."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas.envelope import event_id
from schemas.events import (
    CaseDispatched,
    CaseEvent,
    CaseExtended,
    CaseHandled,
    CaseParked,
    CaseResumed,
    CaseReturned,
    SlaBreach,
    Stage,
)
from services.sla.core import RUNNING, STOPPED, Deadline, apply, breach, mark_breached
from tests.samples import CASE_ID, DEADLINE, sample_of

SECOND = timedelta(seconds=1)


def dispatched(version: int, deadline: datetime = DEADLINE, department: str = "WATER") -> CaseEvent:
    return sample_of(CaseDispatched, version=version, deadline=deadline, department=department)


def handled(version: int) -> CaseEvent:
    return sample_of(CaseHandled, version=version, department="WATER")


def run(events: Iterable[CaseEvent], start: Deadline | None = None) -> Deadline | None:
    """Fold events the way the stream processor does: None means "no change"."""
    current = start
    for event in events:
        updated = apply(current, event)
        if updated is not None:
            current = updated
    return current


def _clock(events: Sequence[CaseEvent]) -> Deadline:
    entry = run(events)
    assert entry is not None
    return entry


# --- the clock -----------------------------------------------------------------------------


def test_dispatched_starts_a_running_clock() -> None:
    entry = apply(None, dispatched(4))
    assert entry == Deadline(4, RUNNING, "WATER", DEADLINE, 4, 0)


def test_handled_with_a_higher_version_stops_the_clock() -> None:
    running = _clock([dispatched(4)])
    stopped = apply(running, handled(5))
    assert stopped is not None
    assert stopped.status == STOPPED
    assert stopped.version == 5
    assert (stopped.department, stopped.deadline, stopped.dispatched_version) == (
        "WATER",
        DEADLINE,
        4,
    )


def test_a_late_dispatched_is_ignored() -> None:
    stopped = _clock([handled(5)])
    assert stopped.status == STOPPED
    assert apply(stopped, dispatched(4)) is None
    assert _clock([handled(5), dispatched(4)]).status == STOPPED


def test_a_repeated_event_is_ignored() -> None:
    running = _clock([dispatched(4)])
    assert apply(running, dispatched(4)) is None
    assert apply(running, dispatched(4, deadline=DEADLINE + timedelta(days=9))) is None


def test_returned_and_parked_stop_the_clock_and_resumed_restarts_it() -> None:
    assert _clock([dispatched(4), sample_of(CaseReturned, version=5)]).status == STOPPED
    parked = _clock([dispatched(4), sample_of(CaseParked, version=5)])
    assert parked.status == STOPPED
    assert breach(CASE_ID, parked, DEADLINE + SECOND) is None  # a paused clock never breaches
    resumed = _clock(
        [dispatched(4), sample_of(CaseParked, version=5), sample_of(CaseResumed, version=6)]
    )
    assert resumed.status == RUNNING
    assert resumed.deadline == DEADLINE
    assert resumed.dispatched_version == 4


def test_extended_moves_the_deadline() -> None:
    later = DEADLINE + timedelta(days=2)
    entry = _clock([dispatched(4), sample_of(CaseExtended, version=5, deadline=later)])
    assert entry.status == RUNNING
    assert entry.deadline == later
    assert entry.version == 5
    assert entry.dispatched_version == 4
    assert entry.department == "WATER"
    assert breach(CASE_ID, entry, DEADLINE + SECOND) is None  # the old deadline no longer counts
    late = breach(CASE_ID, entry, later + SECOND)
    assert late is not None
    assert late.deadline == later


# --- breaches ------------------------------------------------------------------------------


def test_breach_only_when_due() -> None:
    running = _clock([dispatched(4)])
    assert breach(CASE_ID, running, DEADLINE - SECOND) is None
    event = breach(CASE_ID, running, DEADLINE + SECOND)
    assert isinstance(event, SlaBreach)
    assert event.case_id == CASE_ID
    assert event.case_version == 4
    assert event.stage is Stage.handle
    assert event.department == "WATER"
    assert event.deadline == DEADLINE


def test_no_breach_once_handled() -> None:
    stopped = _clock([dispatched(4), handled(5)])
    assert breach(CASE_ID, stopped, DEADLINE + timedelta(days=30)) is None


def test_breach_only_once_per_dispatch() -> None:
    running = _clock([dispatched(4)])
    event = breach(CASE_ID, running, DEADLINE + SECOND)
    assert event is not None
    marked = mark_breached(running, event)
    assert marked.breached_version == 4
    assert (marked.status, marked.version, marked.deadline) == (RUNNING, 4, DEADLINE)
    assert breach(CASE_ID, marked, DEADLINE + SECOND) is None
    assert breach(CASE_ID, marked, DEADLINE + timedelta(days=30)) is None
    # a repeated breach (the same fact read back twice) changes nothing
    assert mark_breached(marked, event) == marked


def test_rework_redispatch_can_breach_again() -> None:
    first_clock = _clock([dispatched(4)])
    first = breach(CASE_ID, first_clock, DEADLINE + SECOND)
    assert first is not None
    later = DEADLINE + timedelta(days=3)
    entry = run([handled(5), dispatched(8, deadline=later)], mark_breached(first_clock, first))
    assert entry is not None
    assert entry.status == RUNNING
    assert entry.dispatched_version == 8
    assert entry.breached_version == 4  # the old breach is remembered...
    assert breach(CASE_ID, entry, later - SECOND) is None
    second = breach(CASE_ID, entry, later + SECOND)
    assert second is not None  # ...but the new dispatch may breach on its own
    assert second.case_version == 8
    assert second.deadline == later
    assert event_id(second) != event_id(first)
    assert breach(CASE_ID, mark_breached(entry, second), later + SECOND) is None


def test_a_late_breach_of_an_old_dispatch_does_not_silence_the_new_one() -> None:
    old = breach(CASE_ID, _clock([dispatched(4)]), DEADLINE + SECOND)
    assert old is not None
    later = DEADLINE + timedelta(days=3)
    entry = mark_breached(_clock([dispatched(4), handled(5), dispatched(8, later)]), old)
    assert breach(CASE_ID, entry, later + SECOND) is not None


# --- persistence ---------------------------------------------------------------------------


def test_json_round_trip() -> None:
    entries = [
        Deadline(8, RUNNING, "WATER", DEADLINE, 8, 4),
        Deadline(5, STOPPED),
    ]
    for entry in entries:
        raw = entry.to_json()
        text = json.dumps(raw)  # what the table stores
        assert Deadline.from_json(json.loads(text)) == entry
    assert entries[0].to_json()["deadline"] == DEADLINE.isoformat()
    assert Deadline.from_json(entries[0].to_json()).deadline == DEADLINE


# --- order independence --------------------------------------------------------------------


@given(st.permutations([dispatched(4), handled(5)]))
def test_any_order_of_dispatched_and_handled_gives_the_same_status(
    events: list[CaseEvent],
) -> None:
    in_order = _clock([dispatched(4), handled(5)])
    shuffled = _clock(events)
    assert shuffled.status == in_order.status == STOPPED
    assert shuffled.version == 5


# What the SLA processor reads: `dispatches` and `completions`, each in order per case, but
# interleaved in any way.
DISPATCHES = [
    dispatched(4),
    sample_of(CaseExtended, version=5, deadline=DEADLINE + timedelta(days=1)),
    sample_of(CaseParked, version=6),
    sample_of(CaseResumed, version=7),
    dispatched(11, deadline=DEADLINE + timedelta(days=5)),  # after handled v8, check, rework
]
COMPLETIONS = [handled(8)]


@st.composite
def interleavings(draw: st.DrawFn) -> list[CaseEvent]:
    """`dispatches` in order with the `handled` of `completions` read at any point."""
    at = draw(st.integers(min_value=0, max_value=len(DISPATCHES)))
    return [*DISPATCHES[:at], *COMPLETIONS, *DISPATCHES[at:]]


@given(interleavings())
def test_any_interleaving_of_the_topics_gives_the_same_deadline(events: list[CaseEvent]) -> None:
    in_order = _clock(sorted(events, key=lambda e: e.version))
    assert _clock(events) == in_order
    assert in_order.status == RUNNING
    assert in_order.dispatched_version == 11
