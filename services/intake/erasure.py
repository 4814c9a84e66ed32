"""Erasing a reporter's contact (PIPL art. 47): by the resident through the hotline, or by
an authorised role (supervision centre, admin). The contact's data key and sealed record are
deleted from the contact store (crypto-shredding, docs/personal-data.md); the events keep
only a reference that now opens nothing. Audited, without the contact.

- `POST /cases/{id}/contact/erasure`: hotline, supervision centre, admin
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from gridloop.auth import Principal, Role, require
from gridloop.errors import refusals
from gridloop.refusal import not_found
from services.intake.edge import Deps
from services.intake.retention import erase_audited

router = APIRouter(tags=["personal data"])
Eraser = Annotated[Principal, Depends(require(Role.hotline, Role.supervision_centre, Role.admin))]


class ErasureIn(BaseModel):
    """Who asked: the resident (the hotline takes the request on their behalf) or the
    authorised role on its own account (a complaint, a court's order, …)."""

    model_config = ConfigDict(extra="forbid")
    requested_by: Literal["resident", "staff"] = "resident"


class Erased(BaseModel):
    case_id: str
    erased: bool  # false: nothing was kept (erased before, or no contact given)
    fields: list[str]  # the names of the fields erased, never their values


@router.post(
    "/cases/{case_id}/contact/erasure", responses=refusals(400, 401, 403, 404)
)  # 400: a body that is not JSON
async def erase_contact(case_id: str, asked: ErasureIn, intake: Deps, who: Eraser) -> Erased:
    """Erase the reporter's contact of a case everywhere gridloop keeps it."""
    if await intake.cases.record(case_id) is None and not await intake.contacts.refs_of_cases(
        [case_id]
    ):
        raise not_found(("path", "case_id"), f"no case {case_id}")
    fields = await erase_audited(
        intake.contacts, intake.audit, case_id, who, asked.requested_by, "intake"
    )
    return Erased(case_id=case_id, erased=fields is not None, fields=fields or [])
