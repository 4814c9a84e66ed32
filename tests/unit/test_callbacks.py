"""Callbacks (回访) decided without any server: tries until the callback is invalid, an
answer that rates the closure on the feedback's one path (and reopens it when the city's
policy says so), and refusals (status, field, reason) for a callback not owed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from gridloop.access import Principal
from gridloop.access import Role as Access
from gridloop.cases import CaseView
from gridloop.cases.view import evolve
from gridloop.citypack.model import CallbackPolicy, CityFile, FeedbackPolicy
from gridloop.errors import STATUS
from gridloop.lifecycle import State
from gridloop.refusal import Refused
from schemas.envelope import Envelope
from schemas.events import (
    Actor,
    CallbackAnswered,
    CallbackUnreached,
    CaseClosed,
    CaseReworked,
    Channel,
    EventData,
    FeedbackGiven,
    Role,
    Satisfaction,
)
from services.intake.callbacks import CallbackIn
from services.intake.commands import CallbackAnswer, CallbackTry
from services.intake.core import (
    callback_rating,
    decide_callback_answer,
    decide_callback_try,
)

CLOSED_AT = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
NOW = CLOSED_AT + timedelta(hours=5)
CLOSED_ACTOR = Actor(role=Role.supervisor, id="sup-1")
OPERATOR = Principal(Access.hotline, "op-3")
TRIES = CallbackPolicy(tries=3)
FEEDBACK = FeedbackPolicy(reopen_at_or_below=2, window=timedelta(days=7))


def closed(**changes: object) -> CaseView:
    case = CaseView(
        case_id="C-1",
        state=State.closed,
        version=9,
        department="SANITATION",
        channel=Channel.hotline,
        reachable=True,
        closed_at=CLOSED_AT,
    )
    return replace(case, **changes)  # type: ignore[arg-type]


def after(case: CaseView, events: list[EventData]) -> CaseView:
    """The head's view once `events` are claimed (the path folds them with `evolve`)."""
    for event in events:
        case = evolve(case, Envelope(event, "/test", NOW))
    return case


def answer(satisfaction: Satisfaction, solved: bool = True) -> CallbackAnswer:
    return CallbackAnswer("C-1", OPERATOR, True, solved, satisfaction, "called at 15:10")


def refusal(call: object, case: CaseView) -> Refused:
    with pytest.raises(Refused) as refused:
        if isinstance(call, CallbackTry):
            decide_callback_try(case, call, TRIES)
        else:
            assert isinstance(call, CallbackAnswer)
            decide_callback_answer(case, call, FEEDBACK, NOW)
    return refused.value


def test_each_unreached_call_is_a_try_and_the_last_makes_the_callback_invalid() -> None:
    case, seen = closed(), []
    for _ in range(TRIES.tries):
        [event] = decide_callback_try(case, CallbackTry("C-1", OPERATOR), TRIES)
        assert isinstance(event, CallbackUnreached)
        seen.append((event.attempt, event.invalid, event.case_version))
        case = after(case, [event])
    assert seen == [(1, False, 9), (2, False, 9), (3, True, 9)]
    assert case.callback_over and case.state is State.closed  # invalid: nothing rated
    for call in (CallbackTry("C-1", OPERATOR), answer("satisfied")):
        refused = refusal(call, case)
        assert (STATUS[refused.why], refused.loc, refused.code) == (
            409,
            ("state",),
            "callback_invalid",
        )


def test_an_answer_after_a_failed_try_rates_the_closure_on_the_feedback_path() -> None:
    [tried] = decide_callback_try(closed(), CallbackTry("C-1", OPERATOR), TRIES)
    case = after(closed(), [tried])
    answered, given = decide_callback_answer(case, answer("basically_satisfied"), FEEDBACK, NOW)
    assert isinstance(answered, CallbackAnswered) and isinstance(given, FeedbackGiven)
    assert (answered.contacted, answered.solved, answered.satisfaction) == (
        True,
        True,
        "basically_satisfied",
    )
    assert (answered.case_version, given.version, given.rating) == (9, 10, 4)
    assert given.actor.role is Role.hotline
    assert after(case, [answered, given]).state is State.evaluated


@pytest.mark.parametrize(
    ("satisfaction", "solved", "rating"),
    [("dissatisfied", True, 1), ("satisfied", False, 2), ("basically_satisfied", False, 2)],
)
def test_a_dissatisfied_or_unsolved_answer_reopens_through_the_feedback_policy(
    satisfaction: Satisfaction, solved: bool, rating: int
) -> None:
    events = decide_callback_answer(closed(), answer(satisfaction, solved), FEEDBACK, NOW)
    _, given, reworked = events
    assert isinstance(given, FeedbackGiven) and given.rating == rating
    assert isinstance(reworked, CaseReworked) and reworked.version == 11
    assert reworked.reason is not None and f"rating {rating} of 5" in reworked.reason
    assert after(closed(), events).state is State.rework


def test_the_policy_alone_decides_reopening() -> None:
    never = FeedbackPolicy(reopen_at_or_below=0)
    events = decide_callback_answer(closed(), answer("dissatisfied"), never, NOW)
    assert [type(e) for e in events] == [CallbackAnswered, FeedbackGiven]


def test_a_satisfied_answer_keeps_its_rating() -> None:
    assert callback_rating(answer("satisfied")) == 5
    assert callback_rating(answer("dissatisfied", solved=False)) == 1


@pytest.mark.parametrize(
    ("case", "loc", "kind"),
    [
        (closed(state=State.dispatched), ("state",), "not_closed"),
        (closed(state=State.handled), ("state",), "not_closed"),
        (closed(state=State.evaluated), ("state",), "already_rated"),
        (closed(state=State.evaluated, callback_over=True), ("state",), "callback_answered"),
        (closed(reachable=False), ("path", "case_id"), "no_contact"),
        (closed(channel=Channel.supervisor), ("path", "case_id"), "no_contact"),
    ],
)
def test_a_callback_not_owed_is_refused(case: CaseView, loc: tuple[str, ...], kind: str) -> None:
    for call in (CallbackTry("C-1", OPERATOR), answer("satisfied")):
        refused = refusal(call, case)
        assert (STATUS[refused.why], refused.loc, refused.code) == (409, loc, kind)


def test_answering_twice_is_refused() -> None:
    events = decide_callback_answer(closed(), answer("satisfied"), FEEDBACK, NOW)
    refused = refusal(answer("satisfied"), after(closed(), events))
    assert (refused.code, refused.loc) == ("callback_answered", ("state",))


def test_an_answer_past_the_feedback_window_is_refused_as_feedback_is() -> None:
    late = CLOSED_AT + timedelta(days=8)
    with pytest.raises(Refused) as refused:
        decide_callback_answer(closed(), answer("satisfied"), FEEDBACK, late)
    assert refused.value.code == "feedback_window_passed"


def test_a_new_closure_owes_a_new_callback() -> None:
    case = after(closed(), decide_callback_try(closed(), CallbackTry("C-1", OPERATOR), TRIES))
    reclosed = evolve(
        replace(case, state=State.checked, version=14),
        Envelope(CaseClosed(case_id="C-1", version=15, actor=CLOSED_ACTOR), "/t", NOW),
    )
    assert (reclosed.callback_tries, reclosed.callback_over) == (0, False)


def test_bad_answers_are_refused_with_their_field() -> None:
    with pytest.raises(ValidationError) as bad:
        CallbackIn.model_validate({"contacted": True, "solved": True, "satisfaction": "meh"})
    assert bad.value.errors()[0]["loc"] == ("satisfaction",)
    with pytest.raises(ValidationError) as missing:
        CallbackIn.model_validate({"contacted": True, "satisfaction": "satisfied"})
    assert missing.value.errors()[0]["loc"] == ("solved",)


@pytest.mark.parametrize("tries", [0, 11, "three"])
def test_the_packs_tries_are_validated(tries: object) -> None:
    with pytest.raises(ValidationError) as bad:
        CityFile.model_validate({"callback": {"tries": tries}})
    assert any(e["loc"][:2] == ("callback", "tries") for e in bad.value.errors())
