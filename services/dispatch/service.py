"""Dispatch's adapters: the Kafka handlers for filed and reworked cases (a poll at once,
or one record), the departments' callback API and the command centre's actions.

Every action reads the case from the projection, decides (pure, `core`), publishes the event
and answers 202 only once Kafka acknowledged it. A department's credential (role
`department`, subject = its code) reaches only the cases dispatched to it; the command
centre's actions need the role `command_centre`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gridloop.auth import CredentialStore, Principal, Role, require
from gridloop.citypack import CityPack
from gridloop.errors import Rejected, install_error_handlers, publish_or_refuse, refusals
from gridloop.http import HttpLimits, harden
from gridloop.idempotency import Answer, IdempotencyStore
from gridloop.kafka import EventProducer, Retry
from gridloop.kafka.batch import Publish
from gridloop.mongo import Document
from gridloop.runtime import add_ops_routes
from schemas import clock
from schemas.envelope import Envelope
from schemas.events import (
    Actor,
    CaseAnnotation,
    CaseDispatched,
    CaseEvent,
    CaseFiled,
    CaseReworked,
    EventData,
    Point,
)
from schemas.events import Role as ActorRole
from services.dispatch import core
from services.projections.core import CaseView
from services.projections.store import CaseStore

SOURCE = "/gridloop/dispatch"
_REQUEST_NAMESPACE = uuid.UUID("a9d2f1e4-5c3b-4e7a-8f60-1b2c3d4e5f60")


class CaseNotYetProjected(Retry):
    """The projection lags behind the event: retried, as a transient failure."""


def _point(doc: Document) -> Point | None:
    coordinates = (doc.get("point") or {}).get("coordinates")
    return Point(lon=coordinates[0], lat=coordinates[1]) if coordinates else None


class Dispatch:
    def __init__(
        self,
        pack: CityPack,
        producer: EventProducer,
        cases: CaseStore,
        idempotency: IdempotencyStore | None = None,
    ) -> None:
        self.pack, self.producer, self.cases = pack, producer, cases
        self.idempotency = idempotency

    async def on_event(self, env: Envelope) -> Sequence[Envelope]:
        """One record: a filed or reworked case read and dispatched (the pipeline's
        record-by-record way, which finds the record at fault when a poll fails)."""
        if not isinstance(env.data, CaseFiled | CaseReworked):
            return []
        event = self.decide(env, await self.cases.get(env.data.case_id))
        return [Envelope(event, SOURCE)] if event else []

    async def on_poll(self, envs: Sequence[Envelope]) -> Publish:
        """A poll at once: every case it files or reworks read in one query, then each event
        decided in order as `on_event` decides it; the pipeline publishes the dispatches
        and awaits Kafka before it commits. A case not projected yet raises before anything
        is published, and the whole poll is tried again."""
        reacting = [env for env in envs if isinstance(env.data, CaseFiled | CaseReworked)]
        docs = await self.cases.get_many(env.data.case_id for env in reacting)
        dispatched: list[Envelope] = []
        for env in reacting:
            event = self.decide(env, docs.get(env.data.case_id))
            if event is not None:
                # As the projection will have it: the same filing again in this poll (a
                # redelivery) is superseded, not dispatched twice.
                docs[event.case_id] = docs[event.case_id] | {"version": event.version}
                dispatched.append(Envelope(event, SOURCE))
        return Publish(dispatched)

    def decide(self, env: Envelope, doc: Document | None) -> CaseDispatched | None:
        """The dispatch a filing or a rework calls for, given its case as projected (`doc`);
        None if the case went past it."""
        data = env.data
        if isinstance(data, CaseFiled):
            # The point of the report decides location rules, its urgency the deadline;
            # both are on the projection, which has the report before the filing (same
            # topic, same key).
            if doc is None:
                raise CaseNotYetProjected(data.case_id)
            if core.superseded(int(doc.get("version", 0)), data.version):
                return None
            return core.decide_dispatch(
                self.pack,
                data.case_id,
                data.version,
                data.kind,
                data.class_code,
                data.grid_code,
                env.time,
                point=_point(doc),
                component_id=data.component_id or doc.get("component_id"),
                urgency=doc.get("urgency"),
            )
        if isinstance(data, CaseReworked):
            if doc is None or not doc.get("class_code"):
                raise CaseNotYetProjected(data.case_id)
            if core.superseded(int(doc.get("version", 0)), data.version):
                return None
            return core.decide_rework_dispatch(
                self.pack, CaseView.from_doc(doc), data.version, env.time
            )
        return None

    async def case(self, case_id: str) -> CaseView:
        doc = await self.cases.get(case_id)
        if doc is None:
            raise Rejected(404, ("path", "case_id"), f"no case {case_id}", "not_found")
        return CaseView.from_doc(doc)

    async def publish(self, event: EventData) -> Answer:
        envelope = Envelope(event, SOURCE)
        await publish_or_refuse(self.producer, [envelope])
        answer: dict[str, Any] = {
            "case_id": event.case_id,
            "type": event.ce_type,
            "events": [envelope.id],
        }
        if isinstance(event, CaseEvent):
            answer |= {"state": event.ce_type.rsplit(".", 1)[-1], "version": event.version}
        elif isinstance(event, CaseAnnotation):
            answer["case_version"] = event.case_version
        if request_id := getattr(event, "request_id", None):
            answer["request_id"] = request_id
        return 202, answer

    async def act(
        self,
        scope: str,
        case_id: str,
        key: str | None,
        body: BaseModel,
        decide: Callable[[CaseView], EventData],
    ) -> JSONResponse:
        """Read the case, decide, publish: once per Idempotency-Key."""

        async def work() -> Answer:
            return await self.publish(decide(await self.case(case_id)))

        return await self.once(f"{scope}:{case_id}", key, body, work)

    async def once(
        self, scope: str, key: str | None, body: BaseModel | None, work: Any
    ) -> JSONResponse:
        if self.idempotency is None:
            status, answer = await work()
            return JSONResponse(answer, status_code=status)
        fingerprint = f"{scope}:{body.model_dump_json() if body else ''}".encode()
        return await self.idempotency.once(scope, key, fingerprint, work)


def _dispatch(request: Request) -> Dispatch:
    dispatch: Dispatch = request.app.state.dispatch
    return dispatch


Deps = Annotated[Dispatch, Depends(_dispatch)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
DepartmentCaller = Annotated[Principal, Depends(require(Role.department))]
CommandCentre = Annotated[Principal, Depends(require(Role.command_centre))]


class Published(BaseModel):
    """An action's 202: the event published, and the case's version after it (a lifecycle
    event) or the version it annotates (a request, an explanation)."""

    case_id: str
    type: str
    events: list[str]
    state: str | None = None
    version: int | None = None
    case_version: int | None = None
    request_id: str | None = None


# What an action answers, and may refuse with besides 422 (documented by FastAPI).
ACT: dict[int | str, dict[str, Any]] = {
    202: {"model": Published, "description": "Published: Kafka acknowledged the event"},
    **refusals(400, 401, 403, 404, 409, 503),
}
departments = APIRouter(
    prefix="/departments/{department}/cases/{case_id}", tags=["departments"], responses=ACT
)
command = APIRouter(
    prefix="/cases/{case_id}", tags=["command centre"], responses=refusals(401, 403, 404)
)


def _own(who: Principal, department: str) -> str:
    """A department's credential speaks only for that department."""
    if who.department != department:
        raise Rejected(
            403,
            ("path", "department"),
            f"this credential is {who.department}'s, not {department}'s",
            "forbidden",
        )
    return department


def _request_id(case_id: str, key: str | None) -> str:
    # With an Idempotency-Key the request id is derived from it: a retry is the same fact.
    return str(uuid.uuid5(_REQUEST_NAMESPACE, f"{case_id}:{key}") if key else uuid.uuid4())


@departments.post("/acknowledge", status_code=202)
async def acknowledge(
    department: str,
    case_id: str,
    answer: core.AcknowledgeIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """签收: the department confirms it received the case (lead or assisting)."""
    _own(who, department)
    return await dispatch.act(
        f"ack:{department}",
        case_id,
        key,
        answer,
        lambda case: core.decide_acknowledge(case, department, answer),
    )


@departments.post("/handled", status_code=202)
async def report_handled(
    department: str,
    case_id: str,
    answer: core.HandledIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """处理反馈: the case is handled, with notes and links to photos."""
    _own(who, department)
    return await dispatch.act(
        f"handled:{department}",
        case_id,
        key,
        answer,
        lambda case: core.decide_handled(case, department, answer),
    )


@departments.post("/return", status_code=202)
async def return_case(
    department: str,
    case_id: str,
    answer: core.ReturnIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """回退: not ours, with the reason; back to the command centre to re-dispatch."""
    _own(who, department)
    return await dispatch.act(
        f"return:{department}",
        case_id,
        key,
        answer,
        lambda case: core.decide_return(case, department, answer),
    )


@departments.post("/extension", status_code=202)
async def request_extension(
    department: str,
    case_id: str,
    answer: core.ExtensionIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """延期: ask for a later deadline; the command centre approves or denies."""
    _own(who, department)
    return await dispatch.act(
        f"extension:{department}",
        case_id,
        key,
        answer,
        lambda case: core.decide_extension_request(
            case, department, answer, _request_id(case_id, key), clock.now()
        ),
    )


@departments.post("/parking", status_code=202)
async def request_parking(
    department: str,
    case_id: str,
    answer: core.ParkingIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """挂账: ask to pause the clock; the command centre approves or denies."""
    _own(who, department)
    return await dispatch.act(
        f"parking:{department}",
        case_id,
        key,
        answer,
        lambda case: core.decide_parking_request(
            case, department, answer, _request_id(case_id, key)
        ),
    )


@departments.post("/resume", status_code=202)
async def department_resume(
    department: str,
    case_id: str,
    answer: core.ResumeIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """A parked case resumes: its clock runs again."""
    _own(who, department)

    async def work() -> Answer:
        case = await dispatch.case(case_id)
        core.authorize(case, department)
        actor = Actor(role=ActorRole.department, id=f"{department}/{answer.handler_id}")
        return await dispatch.publish(core.decide_resume(case, actor, answer.reason))

    return await dispatch.once(f"resume:{department}:{case_id}", key, answer, work)


@departments.post("/explanation", status_code=202)
async def explain(
    department: str,
    case_id: str,
    answer: core.ExplainIn,
    who: DepartmentCaller,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """An overdue case's explanation, owed by its department."""
    _own(who, department)
    return await dispatch.act(
        f"explain:{department}",
        case_id,
        key,
        answer,
        lambda case: core.decide_explain(case, department, answer, clock.now()),
    )


@command.post("/dispatch", status_code=202, responses=ACT)
async def dispatch_by_hand(
    case_id: str,
    order: core.DispatchIn,
    _: CommandCentre,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Dispatch or re-dispatch (改派) by hand, to a lead and assisting departments."""

    return await dispatch.act(
        "dispatch",
        case_id,
        key,
        order,
        lambda case: core.decide_manual_dispatch(dispatch.pack, case, order, clock.now()),
    )


def _decision_route(kind: str, approve: bool) -> Any:
    async def decide(
        case_id: str,
        decision: core.DecisionIn,
        _: CommandCentre,
        dispatch: Deps,
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        async def work() -> Answer:
            case = await dispatch.case(case_id)
            event: EventData
            if kind == "extension":
                event = core.decide_extension(case, decision, approve, clock.now())
            else:
                event = core.decide_parking(case, decision, approve)
            return await dispatch.publish(event)

        verb = "approve" if approve else "deny"
        return await dispatch.once(f"{kind}-{verb}:{case_id}", key, decision, work)

    verb = "approve" if approve else "deny"
    decide.__doc__ = f"{verb.capitalize()} the case's pending {kind} request."
    decide.__name__ = f"{verb}_{kind}"
    return decide


for _kind in ("extension", "parking"):
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
    decision: core.DecisionIn,
    _: CommandCentre,
    dispatch: Deps,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """The command centre resumes a parked case."""

    async def work() -> Answer:
        case = await dispatch.case(case_id)
        actor = Actor(role=ActorRole.command_centre, id=decision.dispatcher)
        return await dispatch.publish(core.decide_resume(case, actor, decision.reason))

    return await dispatch.once(f"resume:{case_id}", key, decision, work)


@command.get("")
async def read_case(case_id: str, _: CommandCentre, dispatch: Deps) -> dict[str, Any]:
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
    }


def create_app(
    dispatch: Dispatch, credentials: CredentialStore, limits: HttpLimits | None = None
) -> FastAPI:
    app = FastAPI(title="gridloop dispatch: department callbacks", version="0.1.0")
    app.state.dispatch = dispatch
    app.state.credentials = credentials
    app.include_router(departments)
    app.include_router(command)
    install_error_handlers(app)
    harden(app, "dispatch", limits or HttpLimits())
    add_ops_routes(app)
    return app
