"""Callbacks (回访): after a closure, the hotline calls back the resident who reported (one
who left a contact) and asks three things — did the unit contact you (响应), is the problem
solved (解决), are you satisfied, basically satisfied or dissatisfied (满意) — the answers
the hotline's three rates count (services/evaluation). A call that reaches nobody is a try;
after the city pack's `callback.tries` the callback is invalid (无效回访) and not counted.

An answer rates the closure on the feedback's one path (`core.decide_callback_answer` →
`core.decide_feedback`): the case goes closed → evaluated, and a rating at or below the
city's `feedback.reopen_at_or_below` reopens it as rework. Every call and answer is an
event (`case.callback_unreached`, `case.callback_answered`) decided on the command path.

- `GET /callbacks`: the hotline's queue, oldest closure first, with each reporter's contact
  (every contact shown is an audited read, as `GET /cases/{id}`)
- `POST /cases/{id}/callback/unreached`: a call that reached nobody
- `POST /cases/{id}/callback`: the resident's answers
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from gridloop.audit import personal_read
from gridloop.auth import Principal, Role, require
from gridloop.errors import refusals
from schemas.events import Satisfaction, Text
from services.intake.commands import CallbackAnswer, CallbackTry
from services.intake.edge import ACT, Deps, IdempotencyKey, asked, respond
from services.intake.views import CONTACT_FIELDS, joined

router = APIRouter(tags=["callbacks"])
Hotline = Annotated[Principal, Depends(require(Role.hotline))]


class CallbackIn(BaseModel):
    """The resident's answers: contacted by the unit? solved? satisfied?"""

    model_config = ConfigDict(extra="forbid")
    contacted: bool
    solved: bool
    satisfaction: Satisfaction
    comment: Text | None = None


class UnreachedIn(BaseModel):
    """A call that reached nobody (no answer, switched off, wrong number)."""

    model_config = ConfigDict(extra="forbid")


class Callback(BaseModel):
    """A callback owed: the closed case, the calls that reached nobody, and whom to call."""

    case_id: str
    closed_at: datetime | None
    tries: int  # calls that reached nobody so far
    tries_left: int
    case_number: str | None = None
    class_code: str | None = None
    department: str | None = None
    address: str | None = None
    description: str | None = None
    reporter: dict[str, Any] = {}


@router.get("/callbacks", responses=refusals(401, 403))
async def callbacks(
    intake: Deps,
    who: Hotline,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Callback]:
    """The callbacks owed (回访), the oldest closure first: closed cases whose reporter
    left a contact, neither answered nor invalid."""
    owed = await intake.awaiting_callback(limit)
    records = await intake.cases.records([view.case_id for view in owed])
    refs = [r.reporter.contact for r in records.values() if r.reporter and r.reporter.contact]
    contacts = await intake.contacts.get_many(refs)
    tries = intake.pack.city.callback.tries
    found = []
    for view in owed:
        record = records.get(view.case_id)
        ref = record.reporter.contact if record and record.reporter else None
        reporter = joined({"contact": ref}, contacts.get(ref or ""))
        if shown := [f for f in CONTACT_FIELDS if f in reporter]:
            await request.app.state.audit.add(personal_read("intake", who, view.case_id, shown))
        found.append(
            Callback(
                case_id=view.case_id,
                closed_at=view.closed_at,
                tries=view.callback_tries,
                tries_left=max(tries - view.callback_tries, 0),
                case_number=record.case_number if record else None,
                class_code=view.class_code,
                department=view.department,
                address=record.address if record else None,
                description=record.description if record else None,
                reporter=reporter,
            )
        )
    return found


@router.post("/cases/{case_id}/callback/unreached", status_code=202, responses=ACT)
async def unreached(
    case_id: str, body: UnreachedIn, intake: Deps, who: Hotline, key: IdempotencyKey = None
) -> JSONResponse:
    """A call that reached nobody; the city's last try makes the callback invalid."""
    command = CallbackTry(case_id, who)
    content = body.model_dump_json()
    return respond(await intake.call_back(command, asked("callback_try", who, key, content)))


@router.post("/cases/{case_id}/callback", status_code=202, responses=ACT)
async def answered(
    case_id: str, answer: CallbackIn, intake: Deps, who: Hotline, key: IdempotencyKey = None
) -> JSONResponse:
    """The resident's answers; a dissatisfied or unsolved one may reopen the case (the
    city's feedback policy)."""
    command = CallbackAnswer(
        case_id, who, answer.contacted, answer.solved, answer.satisfaction, answer.comment
    )
    content = answer.model_dump_json()
    return respond(await intake.call_back(command, asked("callback", who, key, content)))
