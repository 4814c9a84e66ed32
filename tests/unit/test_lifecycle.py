"""The case state machine: paths through the closed loop, invalid transitions, properties."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridloop.lifecycle import (
    OPEN_STATES,
    TRANSITIONS,
    InvalidTransition,
    State,
    can,
    next_state,
    transition_name,
)
from gridloop.refusal import Refused, Why
from schemas.events import EVENT_TYPES, CaseEvent

S = State
TERMINAL = {S.voided}  # merged is left only by a split done by hand
ALL_STATES: list[State | None] = [None, *State]


def run(*transitions: str, start: State | None = None) -> list[State]:
    """Apply transitions in order; the states visited."""
    state, visited = start, []
    for transition in transitions:
        state = next_state(state, transition)
        visited.append(state)
    return visited


def test_happy_path() -> None:
    visited = run(
        "reported", "verified", "filed", "dispatched", "handled", "checked", "closed", "feedback"
    )
    assert visited == [
        S.reported,
        S.verified,
        S.filed,
        S.dispatched,
        S.handled,
        S.checked,
        S.closed,
        S.evaluated,
    ]


def test_supervisor_reports_need_no_verification() -> None:
    assert run("reported", "filed") == [S.reported, S.filed]


@pytest.mark.parametrize("start", [S.reported, S.verified, S.filed])
def test_voided_before_dispatch(start: State) -> None:
    assert next_state(start, "voided") is S.voided


@pytest.mark.parametrize("start", [S.reported, S.verified])
def test_merged_before_filing(start: State) -> None:
    assert next_state(start, "merged") is S.merged


def test_rework_loop_after_a_failed_check() -> None:
    visited = run("rework", "dispatched", "handled", "checked", "closed", start=S.checked)
    assert visited == [S.rework, S.dispatched, S.handled, S.checked, S.closed]


def test_rework_reopens_an_evaluated_case() -> None:
    assert run("rework", "dispatched", start=S.evaluated) == [S.rework, S.dispatched]


def test_parking_and_resume() -> None:
    visited = run("parked", "resumed", "handled", start=S.dispatched)
    assert visited == [S.parked, S.dispatched, S.handled]
    with pytest.raises(InvalidTransition):
        next_state(S.parked, "handled")  # the clock is paused: resume first


def test_return_and_redispatch() -> None:
    assert run("returned", "dispatched", start=S.dispatched) == [S.returned, S.dispatched]


def test_extension_keeps_the_case_dispatched() -> None:
    assert run("extended", "extended", start=S.dispatched) == [S.dispatched, S.dispatched]


@pytest.mark.parametrize(
    ("state", "transition"),
    [
        (None, "filed"),
        (S.reported, "reported"),
        (S.reported, "dispatched"),
        (S.filed, "merged"),
        (S.dispatched, "closed"),
        (S.handled, "closed"),
        (S.closed, "rework"),
        (S.voided, "filed"),
        (S.merged, "reported"),
        (S.parked, "extended"),
    ],
)
def test_invalid_transition(state: State | None, transition: str) -> None:
    with pytest.raises(InvalidTransition) as caught:
        next_state(state, transition)
    message = str(caught.value)
    assert f"'{transition}'" in message
    assert f"is {state.value if state else 'new'};" in message
    assert "allowed from:" in message
    assert caught.value.state == state
    assert caught.value.transition == transition
    assert not can(state, transition)


def test_invalid_transition_lists_allowed_states() -> None:
    with pytest.raises(InvalidTransition, match=r"allowed from: reported, verified$"):
        next_state(S.dispatched, "merged")
    with pytest.raises(InvalidTransition, match=r"allowed from: \(new\)$"):
        next_state(S.filed, "reported")


def test_invalid_transition_is_a_conflict_refusal() -> None:
    refused = InvalidTransition(State.closed, "handled")
    assert isinstance(refused, Refused)
    assert (refused.why, refused.code, refused.loc) == (
        Why.conflict,
        "invalid_transition",
        ("state",),
    )


def test_every_case_event_type_is_a_transition() -> None:
    case_types = {t for t, m in EVENT_TYPES.items() if issubclass(m, CaseEvent)}
    assert {transition_name(t) for t in case_types} == set(TRANSITIONS)
    assert transition_name("gridloop.case.filed") == "filed"


def test_every_state_is_reachable_from_a_new_case() -> None:
    seen: set[State] = set()
    queue: deque[State | None] = deque([None])
    while queue:
        state = queue.popleft()
        for transition in TRANSITIONS:
            if can(state, transition):
                target = next_state(state, transition)
                if target not in seen:
                    seen.add(target)
                    queue.append(target)
    assert seen == set(State)


def test_open_states() -> None:
    assert frozenset(State) - OPEN_STATES == {
        S.voided,
        S.merged,
        S.closed,
        S.evaluated,
        S.answered,
        S.self_handled,
    }
    # Every open state has a way forward.
    for state in OPEN_STATES:
        assert any(can(state, t) for t in TRANSITIONS), state


def test_a_merged_report_only_splits_back_to_reported() -> None:
    assert [t for t in TRANSITIONS if can(S.merged, t)] == ["split"]
    assert next_state(S.merged, "split") is S.reported


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_accept_nothing(state: State) -> None:
    for transition in TRANSITIONS:
        assert not can(state, transition)
        with pytest.raises(InvalidTransition):
            next_state(state, transition)


# --- properties -------------------------------------------------------------------------

transitions = st.sampled_from(sorted(TRANSITIONS))


@given(st.lists(transitions, max_size=60))
def test_random_sequences_stay_within_the_states(sequence: list[str]) -> None:
    state: State | None = None
    for transition in sequence:
        if can(state, transition):
            state = next_state(state, transition)
            assert isinstance(state, State)
            assert state is TRANSITIONS[transition][1]
        else:
            with pytest.raises(InvalidTransition):
                next_state(state, transition)
        if state in TERMINAL:
            assert not any(can(state, t) for t in TRANSITIONS)
    assert state is None or state in set(State)


@given(st.sampled_from(ALL_STATES), transitions)
def test_can_agrees_with_next_state(state: State | None, transition: str) -> None:
    try:
        target = next_state(state, transition)
    except InvalidTransition as exc:
        assert not can(state, transition)
        assert exc.state == state
    else:
        assert can(state, transition)
        assert target in set(State)


@given(st.sampled_from(sorted(TERMINAL)), st.lists(transitions, min_size=1, max_size=20))
def test_terminal_states_stay_terminal(state: State, sequence: list[str]) -> None:
    for transition in sequence:
        assert not can(state, transition)
        with pytest.raises(InvalidTransition):
            next_state(state, transition)
