"""Residents' satisfaction (满意度, issue #6): a rating of a closed case, 1 to 5.

Given once per closure, by the citizen who reported (with the `follow_token` of the report or
their own citizen credential, as they follow the case) or by a hotline operator after a
follow-up call (回访). The case goes closed → evaluated; a rating at or below the city's
`feedback.reopen_at_or_below` also reopens it as rework (返工), which dispatch sends back to
the department that handled it. The decision is pure (`decide_feedback`); the route reads,
decides and publishes like intake's other commands.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gridloop.auth import Principal, Role, require
from gridloop.citypack.model import FeedbackPolicy
from gridloop.errors import Rejected
from gridloop.idempotency import Answer
from gridloop.lifecycle import State
from gridloop.mongo import Document
from schemas.events import Actor, CaseEvent, CaseReworked, FeedbackGiven
from schemas.events import Role as ActorRole
from schemas.limits import Note
from services.intake.api import ACT, FOLLOW_TOKEN, Deps, IdempotencyKey, _accepted, _once
from services.intake.core import SYSTEM, actor_of
from services.intake.views import may_follow
from services.projections.core import CaseView

router = APIRouter()
Rating = Annotated[int, Field(strict=True, ge=1, le=5)]


class FeedbackIn(BaseModel):
    """A resident's rating: 1 very dissatisfied … 5 very satisfied, and what they said."""

    model_config = ConfigDict(extra="forbid")
    rating: Rating
    comment: Note = None


# --- the decision (pure) --------------------------------------------------------------------


def decide_feedback(
    case: CaseView,
    closed_at: datetime | None,
    answer: FeedbackIn,
    actor: Actor,
    policy: FeedbackPolicy,
    now: datetime,
) -> list[CaseEvent]:
    """Feedback on a closed case: evaluated, and reopened as rework when dissatisfied."""
    if case.state is State.evaluated:
        raise Rejected(
            409, ("state",), "this closure of the case has been rated already", "already_rated"
        )
    if case.state is not State.closed:
        raise Rejected(
            409,
            ("state",),
            f"the case is {case.state.value}: feedback is taken once it is closed",
            "not_closed",
        )
    if closed_at is not None and now - closed_at > policy.window:
        raise Rejected(
            409,
            ("state",),
            f"the case was closed on {closed_at.date().isoformat()}: feedback is taken "
            f"within {_span(policy.window)} of the closure",
            "feedback_window_passed",
        )
    v = case.version
    given = FeedbackGiven(
        case_id=case.case_id,
        version=v + 1,
        actor=actor,
        rating=answer.rating,
        comment=answer.comment,
    )
    if answer.rating > policy.reopen_at_or_below:
        return [given]
    reason = (
        f"the resident was dissatisfied (rating {answer.rating} of 5, at or below "
        f"{policy.reopen_at_or_below}): reopened by the city's policy"
    )
    return [given, CaseReworked(case_id=case.case_id, version=v + 2, actor=SYSTEM, reason=reason)]


def _span(window: timedelta) -> str:
    days, seconds = window.days, window.seconds
    return f"{days} days" if days and not seconds else f"{window.total_seconds() / 3600:g} hours"


# --- who may rate ---------------------------------------------------------------------------


def _rater(doc: Document, who: Principal, token: str | None, key: bytes) -> Actor:
    """The resident who reported (by follow token or own credential), or a hotline
    operator; anyone else is told the case is not theirs in the words `/public` uses."""
    if who.role is Role.hotline:
        return actor_of(who)
    reporter = (doc.get("reporter") or {}).get("id")
    own = who.subject != "anonymous" and reporter == who.subject
    if not (own or may_follow(key, doc["_id"], token)):
        raise Rejected(
            404, ("path", "case_id"), f"no case {doc['_id']} for this token", "not_found"
        )
    return Actor(role=ActorRole.citizen, id=(who.subject if own else reporter or "website")[:64])


async def _residents(who: Annotated[Principal, Depends(require(Role.public))]) -> Principal:
    """The public (with or without a citizen credential) and hotline operators."""
    if who.role not in (Role.public, Role.hotline):
        raise Rejected(
            403,
            ("header", "Authorization"),
            f"role {who.role.value} may not rate a case; allowed: public, hotline",
            "forbidden",
        )
    return who


Resident = Annotated[Principal, Depends(_residents)]


@router.post("/cases/{case_id}/feedback", status_code=202, responses=ACT)
async def give_feedback(
    case_id: str,
    answer: FeedbackIn,
    intake: Deps,
    who: Resident,
    token: Annotated[str | None, Query(max_length=100, pattern=FOLLOW_TOKEN)] = None,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """满意度: the reporter (with `token`, their report's `follow_token`, or their citizen
    credential) or a hotline operator rates the closed case; a dissatisfied rating reopens
    it (the city pack's `feedback` policy)."""

    async def work() -> Answer:
        doc = await intake.doc(case_id)
        actor = _rater(doc, who, token, intake.follow_key)
        policy = intake.pack.city.feedback
        events = decide_feedback(
            CaseView.from_doc(doc), doc.get("closed_at"), answer, actor, policy, intake.clock()
        )
        await intake.publish(events)
        return _accepted(events)

    return await _once(intake, "feedback", who, key, f"{case_id}:{answer.model_dump_json()}", work)
