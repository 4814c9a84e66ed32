"""Residents' feedback decided without any server: evaluated, reopened when dissatisfied,
refused on an open, rated or long-closed case."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from gridloop.access import PUBLIC, Principal
from gridloop.access import Role as Access
from gridloop.cases import CaseView
from gridloop.citypack.model import FeedbackPolicy
from gridloop.errors import STATUS
from gridloop.lifecycle import State, next_state
from gridloop.refusal import Refused, Why
from schemas.events import Actor, CaseReworked, FeedbackGiven, Role
from services.intake.commands import Rate
from services.intake.core import decide_feedback
from services.intake.requests import FeedbackIn

CLOSED_AT = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
RESIDENT = Actor(role=Role.citizen, id="citizen-7")
REPORTER = Principal(Access.public, "citizen-7")  # the resident's own citizen credential
POLICY = FeedbackPolicy(reopen_at_or_below=2, window=timedelta(days=7))


def closed_case(state: State = State.closed) -> CaseView:
    return CaseView(
        case_id="C-1",
        state=state,
        version=9,
        department="SANITATION",
        reporter_id="citizen-7",
        closed_at=CLOSED_AT,
    )


def decide(rating: int, state: State = State.closed, after: timedelta = timedelta(hours=3)) -> (
    list[object]
):  # fmt: skip
    rate = Rate("C-1", REPORTER, rating, comment="ok")
    return list(decide_feedback(closed_case(state), rate, POLICY, CLOSED_AT + after))


def test_a_satisfied_rating_evaluates_the_case() -> None:
    [given] = decide(4)
    assert isinstance(given, FeedbackGiven)
    assert (given.version, given.rating, given.comment, given.actor) == (10, 4, "ok", RESIDENT)
    assert next_state(State.closed, "feedback") is State.evaluated


@pytest.mark.parametrize("rating", [1, 2])
def test_a_dissatisfied_rating_reopens_the_case_as_rework(rating: int) -> None:
    given, reworked = decide(rating)
    assert isinstance(given, FeedbackGiven) and isinstance(reworked, CaseReworked)
    assert reworked.version == 11
    assert reworked.reason is not None and f"rating {rating}" in reworked.reason
    # The lifecycle lets the reopened case go back to a department.
    assert next_state(next_state(State.evaluated, "rework"), "dispatched") is State.dispatched


def test_the_threshold_is_the_citys() -> None:
    never = FeedbackPolicy(reopen_at_or_below=0)
    events = decide_feedback(closed_case(), Rate("C-1", REPORTER, 1), never, CLOSED_AT)
    assert [type(e) for e in events] == [FeedbackGiven]


def test_a_second_rating_is_refused() -> None:
    with pytest.raises(Refused) as refused:
        decide(5, State.evaluated)
    assert (STATUS[refused.value.why], refused.value.code) == (409, "already_rated")


@pytest.mark.parametrize("state", [State.dispatched, State.handled, State.rework])
def test_an_open_case_is_refused_with_its_state(state: State) -> None:
    with pytest.raises(Refused) as refused:
        decide(5, state)
    assert (refused.value.why, STATUS[refused.value.why]) == (Why.conflict, 409)
    assert refused.value.code == "not_closed"
    assert refused.value.loc == ("state",)
    assert state.value in refused.value.reason


def test_a_rating_after_the_window_is_refused() -> None:
    assert decide(3, after=timedelta(days=7))  # the last moment still counts
    with pytest.raises(Refused) as refused:
        decide(3, after=timedelta(days=7, seconds=1))
    assert (STATUS[refused.value.why], refused.value.code) == (409, "feedback_window_passed")


@pytest.mark.parametrize("rating", [0, 6, "4", 3.5, None])
def test_a_rating_is_a_whole_number_from_1_to_5(rating: object) -> None:
    with pytest.raises(ValidationError) as invalid:
        FeedbackIn.model_validate({"rating": rating})
    assert invalid.value.errors()[0]["loc"] == ("rating",)


def test_the_policy_is_checked() -> None:
    with pytest.raises(ValidationError):
        FeedbackPolicy(reopen_at_or_below=6)
    with pytest.raises(ValidationError):
        FeedbackPolicy(window=timedelta(0))


def test_the_window_is_named_in_the_refusal() -> None:
    with pytest.raises(Refused) as refused:
        decide(3, after=timedelta(days=8))
    assert "within 7 days of the closure" in refused.value.reason


# --- who may rate -----------------------------------------------------------------------------


def test_the_reporter_by_follow_token_or_the_hotline_after_a_callback_rates() -> None:
    case = closed_case()
    by_token = decide_feedback(case, Rate("C-1", PUBLIC, 4, follows=True), POLICY, CLOSED_AT)
    assert by_token[0].actor == RESIDENT  # the report's reporter, not "anonymous"
    hotline = Principal(Access.hotline, "op-3")
    [called] = decide_feedback(case, Rate("C-1", hotline, 4), POLICY, CLOSED_AT)
    assert called.actor == Actor(role=Role.hotline, id="op-3")
    anonymous = replace(case, reporter_id=None)
    [website] = decide_feedback(anonymous, Rate("C-1", PUBLIC, 4, follows=True), POLICY, CLOSED_AT)
    assert website.actor == Actor(role=Role.citizen, id="website")


@pytest.mark.parametrize("who", [PUBLIC, Principal(Access.public, "citizen-8")])
def test_anyone_else_is_told_there_is_no_such_case(who: Principal) -> None:
    """Without the follow token, only the reporter's own credential rates; anyone else is
    told the case is not theirs, before its state is looked at."""
    for state in (State.closed, State.dispatched):
        with pytest.raises(Refused) as refused:
            decide_feedback(closed_case(state), Rate("C-1", who, 4), POLICY, CLOSED_AT)
        assert (refused.value.why, refused.value.loc) == (Why.not_found, ("path", "case_id"))
        assert STATUS[refused.value.why] == 404
