"""A reporter asks to be told nothing more of their case (退订): with their report's follow
token (or their own citizen credential), or through a hotline operator on the phone. The
opt-out is kept with the contact, sealed, and erased with it; notify reads it before each
message (`services/notify/reporters.py`), so a message not yet sent is not sent either.

- `POST /cases/{id}/contact/opt-out`: the reporter (as for `/public`), hotline
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from gridloop.auth import Principal, Role, require
from gridloop.errors import refusals
from gridloop.refusal import forbidden, not_found
from services.intake.edge import FOLLOW_TOKEN, Deps
from services.intake.views import may_follow

router = APIRouter(tags=["personal data"])


async def _reporters(who: Annotated[Principal, Depends(require(Role.public))]) -> Principal:
    if who.role not in (Role.public, Role.hotline):
        raise forbidden(
            ("header", "Authorization"),
            f"role {who.role.value} may not opt a reporter out; allowed: public, hotline",
        )
    return who


class OptedOut(BaseModel):
    case_id: str
    opted_out: bool  # false: no contact is kept to tell (none given, or erased)


@router.post("/cases/{case_id}/contact/opt-out", responses=refusals(401, 403, 404))
async def opt_out(
    case_id: str,
    intake: Deps,
    who: Annotated[Principal, Depends(_reporters)],
    token: Annotated[str | None, Query(max_length=100, pattern=FOLLOW_TOKEN)] = None,
) -> OptedOut:
    """The reporter is told nothing more of the case (no SMS, WeChat or email)."""
    record = await intake.cases.record(case_id)
    own = record is not None and who.role is Role.public and who.subject != "anonymous" and (
        record.reporter is not None and record.reporter.id == who.subject
    )  # fmt: skip
    allowed = who.role is Role.hotline or own or may_follow(intake.follow_key, case_id, token)
    if record is None or not allowed:
        # The same answer for "no such case" and "not yours", as `/public` gives.
        raise not_found(("path", "case_id"), f"no case {case_id} for this token")
    refs = await intake.contacts.refs_of_cases([case_id])
    done = [await intake.contacts.opt_out(ref) for ref in refs]
    return OptedOut(case_id=case_id, opted_out=any(done))
