"""Residents' satisfaction (满意度): a rating of a closed case, 1 to 5.

Given once per closure, by the citizen who reported (with the `follow_token` of the report or
their own citizen credential, as they follow the case) or by a hotline operator after a
follow-up call (回访). The case goes closed → evaluated; a rating at or below the city's
`feedback.reopen_at_or_below` also reopens it as rework (返工), which dispatch sends back to
the department that handled it. Decided in `core.decide_feedback`, on the command path like
intake's other commands.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from gridloop.auth import Principal, Role, require
from gridloop.refusal import forbidden
from services.intake.commands import Rate
from services.intake.edge import ACT, FOLLOW_TOKEN, Deps, IdempotencyKey, asked, respond
from services.intake.requests import FeedbackIn
from services.intake.views import may_follow

router = APIRouter()


async def _residents(who: Annotated[Principal, Depends(require(Role.public))]) -> Principal:
    """The public (with or without a citizen credential) and hotline operators."""
    if who.role not in (Role.public, Role.hotline):
        raise forbidden(
            ("header", "Authorization"),
            f"role {who.role.value} may not rate a case; allowed: public, hotline",
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
    follows = may_follow(intake.follow_key, case_id, token)
    command = Rate(case_id, who, answer.rating, answer.comment, follows)
    return respond(await intake.act(command, asked("feedback", who, key, answer.model_dump_json())))
