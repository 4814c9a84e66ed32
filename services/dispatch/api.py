"""Dispatch's HTTP edge: the departments' callback API and the command centre's actions.

Each route reads its request, builds a command (`commands.py`) from it and its credential,
and hands it to the service layer (`handlers.Dispatch`), which answers 202 once Kafka
acknowledged the event. A department's credential (role `department`, subject = its code)
reaches only the cases dispatched to it, at `/department/cases/{id}/…` (the credential names
the department; `/departments/{code}/cases/{id}/…` is kept for compatibility); the command
centre's actions need the role `command_centre`, except approvals (extension, parking,
return) and 督办, which are the shift lead's (值班长, role `shift_lead`: docs/console.md says
why).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from gridloop.auth import CredentialStore, Principal, Role, require
from gridloop.cases.reader import CaseReader
from gridloop.commands import Answer, Asked
from gridloop.errors import install_error_handlers, refusals
from gridloop.http import HttpLimits, harden
from gridloop.refusal import forbidden
from gridloop.runtime import add_ops_routes
from schemas.events import Actor
from schemas.events import Role as ActorRole
from schemas.limits import (
    PHOTOS_MAX,
    Assisting,
    DeadlineIn,
    DepartmentCode,
    HandlerId,
    Note,
    PersonId,
    Reason,
)
from services.dispatch import commands as do
from services.dispatch import disputes_api, queue
from services.dispatch.handlers import Dispatch

_REQUEST_NAMESPACE = uuid.UUID("a9d2f1e4-5c3b-4e7a-8f60-1b2c3d4e5f60")


# --- what callers send -----------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HandledIn(_In):
    handler_id: HandlerId
    note: Note = None
    photos: Annotated[list[HttpUrl], Field(max_length=PHOTOS_MAX)] = []  # links to the photos


class AcknowledgeIn(_In):
    handler_id: HandlerId


class ReturnIn(_In):
    handler_id: HandlerId
    reason: Reason  # why the case is not this department's


class ExtensionIn(_In):
    handler_id: HandlerId
    deadline: DeadlineIn  # the deadline asked for
    reason: Reason


class ParkingIn(_In):
    handler_id: HandlerId
    reason: Reason


class ResumeIn(_In):
    handler_id: HandlerId
    reason: Note = None


class ExplainIn(_In):
    handler_id: HandlerId
    explanation: Reason


class DecisionIn(_In):
    """The shift lead's answer to a pending request (`dispatcher`: the person deciding)."""

    dispatcher: PersonId
    reason: Note = None
    # Approving an extension: a deadline other than the one asked for.
    deadline: DeadlineIn | None = None


class UrgeIn(_In):
    """督办: the shift lead urges the department holding the case."""

    lead: PersonId
    message: Reason


class UrgeReplyIn(_In):
    """The urged department's reply."""

    handler_id: HandlerId
    reply: Reason


class DispatchIn(_In):
    """The command centre dispatches (or re-dispatches, 改派) a case by hand."""

    dispatcher: PersonId
    department: DepartmentCode
    assisting: Assisting = []
    deadline: DeadlineIn | None = None  # default: the class's handling limit from now
    reason: Reason


class Published(BaseModel):
    """An action's 202: the case's state and version after it, the event published (its
    type and id), and the version it annotates (a request, an explanation)."""

    case_id: str
    state: str
    version: int
    type: str
    events: list[str]
    case_version: int | None = None
    request_id: str | None = None


# --- routes ----------------------------------------------------------------------------


def _dispatch(request: Request) -> Dispatch:
    dispatch: Dispatch = request.app.state.dispatch
    return dispatch


Deps = Annotated[Dispatch, Depends(_dispatch)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
DepartmentCaller = Annotated[Principal, Depends(require(Role.department))]
CommandCentre = Annotated[Principal, Depends(require(Role.command_centre))]
ShiftLead = Annotated[Principal, Depends(require(Role.shift_lead))]
# What the command centre's people both read: the case with its pending request.
CentreStaff = Annotated[Principal, Depends(require(Role.command_centre, Role.shift_lead))]

# What an action answers, and may refuse with besides 422 (documented by FastAPI).
ACT: dict[int | str, dict[str, Any]] = {
    202: {"model": Published, "description": "Published: Kafka acknowledged the event"},
    **refusals(400, 401, 403, 404, 409, 503),
}
# A department acts on its case at `/department/cases/{id}/…`: the credential names the
# department. `/departments/{code}/cases/{id}/…` is kept for integrations built on it.
own = APIRouter(prefix="/department/cases/{case_id}", tags=["departments"], responses=ACT)
departments = APIRouter(
    prefix="/departments/{department}/cases/{case_id}",
    tags=["departments (kept for compatibility)"],
    responses=ACT,
    deprecated=True,
)
command = APIRouter(
    prefix="/cases/{case_id}", tags=["command centre"], responses=refusals(401, 403, 404)
)


def _own(who: Principal, department: str) -> str:
    """A department's credential speaks only for that department."""
    if who.department != department:
        raise forbidden(
            ("path", "department"), f"this credential is {who.department}'s, not {department}'s"
        )
    return department


def _request_id(case_id: str, key: str | None) -> str:
    # With an Idempotency-Key the request id is derived from it: a retry is the same fact.
    return str(uuid.uuid5(_REQUEST_NAMESPACE, f"{case_id}:{key}") if key else uuid.uuid4())


async def _act(
    dispatch: Dispatch,
    command: do.Command,
    name: str,
    who: Principal,
    key: str | None,
    body: BaseModel,
) -> JSONResponse:
    asked = Asked(f"{name}:{who.role.value}:{who.subject}", key, body.model_dump_json())
    return _response(await dispatch.handle(command, asked))


def _response(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status)


@departments.post("/acknowledge", status_code=202)
async def acknowledge(
    department: str,
    case_id: str,
    answer: AcknowledgeIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """签收: the department confirms it received the case (lead or assisting)."""
    ack = do.Acknowledge(case_id, _own(who, department), answer.handler_id)
    return await _act(dispatch, ack, "acknowledge", who, key, answer)


@departments.post("/handled", status_code=202)
async def report_handled(
    department: str,
    case_id: str,
    answer: HandledIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """处理反馈: the case is handled, with notes and links to photos."""
    photos = tuple(str(p) for p in answer.photos)
    handled = do.Handle(case_id, _own(who, department), answer.handler_id, answer.note, photos)
    return await _act(dispatch, handled, "handled", who, key, answer)


@departments.post("/return", status_code=202)
async def return_case(
    department: str,
    case_id: str,
    answer: ReturnIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """回退: not ours, with the reason; back to the command centre to re-dispatch (or, where
    the city pack says so, a request the shift lead approves or denies)."""
    own = _own(who, department)
    returned = do.Return(case_id, own, answer.handler_id, answer.reason, _request_id(case_id, key))
    return await _act(dispatch, returned, "return", who, key, answer)


@departments.post("/extension", status_code=202)
async def request_extension(
    department: str,
    case_id: str,
    answer: ExtensionIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """延期: ask for a later deadline; the command centre approves or denies."""
    asked = do.RequestExtension(
        case_id,
        _own(who, department),
        answer.handler_id,
        answer.deadline,
        answer.reason,
        _request_id(case_id, key),
    )
    return await _act(dispatch, asked, "extension", who, key, answer)


@departments.post("/parking", status_code=202)
async def request_parking(
    department: str,
    case_id: str,
    answer: ParkingIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """挂账: ask to pause the clock; the command centre approves or denies."""
    own = _own(who, department)
    asked = do.RequestParking(
        case_id, own, answer.handler_id, answer.reason, _request_id(case_id, key)
    )
    return await _act(dispatch, asked, "parking", who, key, answer)


@departments.post("/resume", status_code=202)
async def department_resume(
    department: str,
    case_id: str,
    answer: ResumeIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """A parked case resumes: its clock runs again (or, where the city pack says so, a
    request the shift lead approves or denies)."""
    own = _own(who, department)
    actor = Actor(role=ActorRole.department, id=f"{own}/{answer.handler_id}")
    request_id = _request_id(case_id, key)
    resume = do.Resume(case_id, actor, answer.reason, department=own, request_id=request_id)
    return await _act(dispatch, resume, "resume", who, key, answer)


@departments.post("/explanation", status_code=202)
async def explain(
    department: str,
    case_id: str,
    answer: ExplainIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """An overdue case's explanation, owed by its department."""
    explained = do.Explain(case_id, _own(who, department), answer.handler_id, answer.explanation)
    return await _act(dispatch, explained, "explain", who, key, answer)


def _caller(who: Principal) -> str:
    department = who.department
    assert department is not None  # the role `department` always names one
    return department


@own.post("/acknowledge", status_code=202)
async def acknowledge_own(
    case_id: str,
    answer: AcknowledgeIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """签收: the caller's department confirms it received the case (lead or assisting)."""
    return await acknowledge(_caller(who), case_id, answer, who, dispatch, key)


@own.post("/handled", status_code=202)
async def report_handled_own(
    case_id: str,
    answer: HandledIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """处理反馈: the case is handled, with notes and links to photos."""
    return await report_handled(_caller(who), case_id, answer, who, dispatch, key)


@own.post("/return", status_code=202)
async def return_own(
    case_id: str,
    answer: ReturnIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """回退: not ours, with the reason; back to the command centre to re-dispatch."""
    return await return_case(_caller(who), case_id, answer, who, dispatch, key)


@own.post("/extension", status_code=202)
async def request_extension_own(
    case_id: str,
    answer: ExtensionIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """延期: ask for a later deadline; the command centre approves or denies."""
    return await request_extension(_caller(who), case_id, answer, who, dispatch, key)


@own.post("/parking", status_code=202)
async def request_parking_own(
    case_id: str,
    answer: ParkingIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """挂账: ask to pause the clock; the command centre approves or denies."""
    return await request_parking(_caller(who), case_id, answer, who, dispatch, key)


@own.post("/resume", status_code=202)
async def resume_own(
    case_id: str,
    answer: ResumeIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """A parked case resumes: its clock runs again (or, where the city pack says so, a
    request the shift lead approves or denies)."""
    return await department_resume(_caller(who), case_id, answer, who, dispatch, key)


@own.post("/explanation", status_code=202)
async def explain_own(
    case_id: str,
    answer: ExplainIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """An overdue case's explanation, owed by its department."""
    return await explain(_caller(who), case_id, answer, who, dispatch, key)


@command.post("/dispatch", status_code=202, responses=ACT)
async def dispatch_by_hand(
    case_id: str,
    order: DispatchIn,
    who: CommandCentre,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Dispatch or re-dispatch (改派) by hand, to a lead and assisting departments."""
    by_hand = do.DispatchByHand(
        case_id,
        order.dispatcher,
        order.department,
        order.reason,
        tuple(order.assisting),
        order.deadline,
        who.person,
    )
    return await _act(dispatch, by_hand, "dispatch", who, key, order)


def _decision_route(kind: do.RequestKind, approve: bool) -> Any:
    verb = "approve" if approve else "deny"

    async def decide(
        case_id: str,
        decision: DecisionIn,
        who: ShiftLead,
        dispatch: Deps,
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        answer = do.AnswerRequest(
            case_id,
            kind,
            approve,
            decision.dispatcher,
            decision.reason,
            decision.deadline,
            who.person,
        )
        return await _act(dispatch, answer, f"{kind}-{verb}", who, key, decision)

    decide.__doc__ = f"{verb.capitalize()} the case's pending {kind} request."
    decide.__name__ = f"{verb}_{kind}"
    return decide


for _kind in ("extension", "parking", "return", "resume"):
    for _approve in (True, False):
        command.add_api_route(
            f"/{_kind}/{'approve' if _approve else 'deny'}",
            _decision_route(_kind, _approve),
            methods=["POST"],
            status_code=202,
            responses=ACT,
        )


@command.post("/resume", status_code=202, responses=ACT)
async def command_resume(
    case_id: str,
    decision: DecisionIn,
    who: CommandCentre,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """The command centre resumes a parked case."""
    actor = Actor(role=ActorRole.command_centre, id=decision.dispatcher)
    resume = do.Resume(case_id, actor, decision.reason)
    return await _act(dispatch, resume, "resume", who, key, decision)


@command.post("/urge", status_code=202, responses=ACT)
async def urge(
    case_id: str, asked: UrgeIn, who: ShiftLead, dispatch: Deps, key: IdempotencyKey = None
) -> JSONResponse:
    """督办: urge the department holding the case; it owes a reply by the pack's limit."""
    urged = do.Urge(case_id, asked.lead, asked.message, _request_id(case_id, key))
    return await _act(dispatch, urged, "urge", who, key, asked)


@departments.post("/urge-reply", status_code=202)
async def reply_to_urge(
    department: str,
    case_id: str,
    answer: UrgeReplyIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """The urged department's reply to the open 督办."""
    reply = do.ReplyToUrge(case_id, _own(who, department), answer.handler_id, answer.reply)
    return await _act(dispatch, reply, "urge-reply", who, key, answer)


@own.post("/urge-reply", status_code=202)
async def reply_to_urge_own(
    case_id: str,
    answer: UrgeReplyIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """The urged department's reply to the open 督办."""
    return await reply_to_urge(_caller(who), case_id, answer, who, dispatch, key)


@command.get("")
async def read_case(case_id: str, _: CentreStaff, dispatch: Deps) -> dict[str, Any]:
    """The case as the command centre sees it: state, department, pending request."""
    case = await dispatch.case(case_id)
    return {
        "case_id": case.case_id,
        "state": case.state.value,
        "version": case.version,
        "department": case.department,
        "assisting": list(case.assisting),
        "deadline": case.deadline.isoformat() if case.deadline else None,
        "urgency": case.urgency,
        "pending_request": case.pending_request.__dict__ if case.pending_request else None,
        "urge": {
            "urge_id": case.urge_id,
            "department": case.urged_department,
            "reply_by": case.urge_reply_by.isoformat() if case.urge_reply_by else None,
        }
        if case.urge_id
        else None,
    }


def create_app(
    dispatch: Dispatch,
    credentials: CredentialStore,
    limits: HttpLimits | None = None,
    reader: CaseReader | None = None,
) -> FastAPI:
    app = FastAPI(title="gridloop dispatch: department callbacks", version="0.2.0")
    app.state.dispatch = dispatch
    app.state.credentials = credentials
    # The department's reads: the system's database (the credentials' own) by default.
    app.state.reader = reader or CaseReader(credentials.credentials.database)
    app.include_router(queue.router)
    app.include_router(own)
    app.include_router(departments)
    app.include_router(command)
    app.include_router(disputes_api.router, responses=ACT)
    install_error_handlers(app)
    harden(app, "dispatch", limits or HttpLimits())
    add_ops_routes(app)
    return app
