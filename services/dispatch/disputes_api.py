"""The tier offices' API for disputes (矛盾纠纷): a tier office (role `tier_office`, subject
= the tier's code) or, at the grid tier, the grid's staff act on the disputes their tier
holds; each command goes the one command path (`handlers.Dispatch.dispute`).

    GET  /disputes                           the caller's disputes: held now, and overdue
    POST /disputes/{id}/escalate             beyond our authority: up one tier (a reason)
    POST /disputes/{id}/explanation          why our tier ran past its limit
    POST /disputes/{id}/confirm              验收: the parties confirmed (who)
    POST /disputes/{id}/close                closed: confirmed, or why not
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gridloop.auth import Principal, Role, require
from gridloop.cases.lights import Light, dispute_light
from gridloop.cases.reader import CaseReader
from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack
from gridloop.commands import Asked
from gridloop.errors import refusals
from schemas.events import Party
from schemas.limits import Note, Reason
from services.dispatch import disputes as do
from services.dispatch.handlers import Dispatch

TierStaff = Annotated[Principal, Depends(require(Role.tier_office, Role.grid_staff))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
router = APIRouter(prefix="/disputes", tags=["disputes (tier offices)"])
CLOSED_SHOWN = 20  # the closed disputes a tier office's list shows: its latest work
_EPOCH = datetime.min.replace(tzinfo=UTC)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EscalateIn(_In):
    reason: Reason  # why it is beyond this tier's authority


class ExplainIn(_In):
    explanation: Reason


class ConfirmIn(_In):
    parties: Annotated[list[Party], Field(min_length=1, max_length=10)]


class CloseIn(_In):
    note: Note = None
    unconfirmed_reason: Note = None  # the tier's record of why the parties did not confirm


class TierDispute(BaseModel):
    case_id: str
    state: str
    version: int
    class_code: str | None
    grid_code: str | None
    tier: str | None
    tier_office: str | None
    held: bool  # the caller's tier holds it now
    light: Light
    deadline: datetime | None
    overdue: bool  # the caller's tier ran past its limit on it
    explained: bool  # … and explained why
    reported_at: datetime | None
    closed_at: datetime | None = None
    confirmed: bool = False  # closed with the parties' confirmation (验收)
    # The sides that confirmed the resolution (验收) at the dispute's current version.
    confirmed_by: list[str] = []


class TierDisputes(BaseModel):
    disputes: list[TierDispute]
    # The caller's overdue disputes still owing an explanation (Zhoushan's rule).
    unexplained: list[str]
    # The latest disputes the caller's tier closed (已调结), the latest first.
    closed: list[TierDispute] = []


def _dispatch(request: Request) -> Dispatch:
    dispatch: Dispatch = request.app.state.dispatch
    return dispatch


def _reader(request: Request) -> CaseReader:
    reader: CaseReader = request.app.state.reader
    return reader


Deps = Annotated[Dispatch, Depends(_dispatch)]


async def _act(
    dispatch: Dispatch, command: do.DisputeCommand, name: str, key: str | None, body: BaseModel
) -> JSONResponse:
    who = command.who
    asked = Asked(f"dispute-{name}:{who.role.value}:{who.subject}", key, body.model_dump_json())
    answer = await dispatch.dispute(command, asked)
    return JSONResponse(answer.body, status_code=answer.status)


@router.get("", responses=refusals(401, 403))
async def tier_disputes(
    who: TierStaff,
    dispatch: Deps,
    reader: Annotated[CaseReader, Depends(_reader)],
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> TierDisputes:
    """The caller's tier's disputes (a grid's staff: their grids'): those it holds open now
    (with their light) and those it was overdue on, saying which still owe an
    explanation; and the `CLOSED_SHOWN` it closed last."""
    shown: list[TierDispute] = []
    closed: list[TierDispute] = []
    for office in do.offices_of(dispatch.pack, who):
        found = await reader.of_tier_office(office, limit)
        shown += [_shown(case, office, dispatch.pack) for case in found]
        ended = await reader.closed_by_office(office, CLOSED_SHOWN)
        closed += [_shown(case, office, dispatch.pack) for case in ended]
    unexplained = [d.case_id for d in shown if d.overdue and not d.explained]
    closed.sort(key=lambda d: d.closed_at or d.reported_at or _EPOCH, reverse=True)
    return TierDisputes(
        disputes=shown[:limit], unexplained=unexplained, closed=closed[:CLOSED_SHOWN]
    )


def _shown(case: CaseRecord, office: str, pack: CityPack) -> TierDispute:
    return TierDispute(
        case_id=case.case_id,
        state=case.state.value,
        version=case.version,
        class_code=case.class_code,
        grid_code=case.grid_code,
        tier=case.tier,
        tier_office=case.tier_office,
        held=case.tier_office == office and case.state.value != "closed",
        light=dispute_light(case),
        deadline=_deadline(case, pack),
        overdue=office in case.tiers_overdue,
        explained=office in case.tiers_explained,
        reported_at=case.reported_at,
        closed_at=case.closed_at,
        confirmed=_closed_confirmed(case),
        confirmed_by=_confirmed_by(case),
    )


def _deadline(case: CaseRecord, pack: CityPack) -> datetime | None:
    """The holding tier's deadline: the escalation's (or the engine's last light's), and
    for the grid, reckoned from the report on the ladder, as the engine does."""
    clock = case.sla.get("mediate")
    if clock is not None and clock.case_version == case.tier_version:
        return clock.deadline
    ladder = pack.sla.disputes
    if case.tier == "grid" and case.reported_at is not None and ladder is not None:
        return ladder.deadline("grid", case.reported_at)[0]
    return case.deadline if case.tier != "grid" else None


def _closed_confirmed(case: CaseRecord) -> bool:
    closed = [e for e in case.timeline if e.type == "case.dispute_closed"]
    return bool(closed and closed[-1].data.get("confirmed"))


def _confirmed_by(case: CaseRecord) -> list[str]:
    found = [
        e for e in case.timeline if e.type == "case.dispute_confirmed" and e.version == case.version
    ]
    return [str(p.get("side")) for p in found[-1].data.get("parties", [])] if found else []


@router.post("/{case_id}/escalate", status_code=202)
async def escalate(
    case_id: str, body: EscalateIn, who: TierStaff, dispatch: Deps, key: IdempotencyKey = None
) -> JSONResponse:
    """Beyond this tier's authority: up one tier, with the reason."""
    return await _act(dispatch, do.Escalate(case_id, who, body.reason), "escalate", key, body)


@router.post("/{case_id}/explanation", status_code=202)
async def explain(
    case_id: str, body: ExplainIn, who: TierStaff, dispatch: Deps, key: IdempotencyKey = None
) -> JSONResponse:
    """Why the caller's tier ran past its limit on this dispute."""
    command = do.ExplainOverdue(case_id, who, body.explanation)
    return await _act(dispatch, command, "explain", key, body)


@router.post("/{case_id}/confirm", status_code=202)
async def confirm(
    case_id: str, body: ConfirmIn, who: TierStaff, dispatch: Deps, key: IdempotencyKey = None
) -> JSONResponse:
    """验收: the parties confirmed the resolution (their side, a contact reference at most)."""
    command = do.Confirm(case_id, who, tuple(body.parties))
    return await _act(dispatch, command, "confirm", key, body)


@router.post("/{case_id}/close", status_code=202)
async def close(
    case_id: str, body: CloseIn, who: TierStaff, dispatch: Deps, key: IdempotencyKey = None
) -> JSONResponse:
    """Closed by the tier holding it: on the parties' confirmation, or with why not."""
    command = do.Close(case_id, who, body.note, body.unconfirmed_reason)
    return await _act(dispatch, command, "close", key, body)
