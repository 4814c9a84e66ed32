"""Dispatch decisions. Pure: the city pack and facts in, events out.

Routing, most specific rule first, each decision explained in the event (`rule`, `basis`):
1. the component instance's maintainer (养护单位), else its owner (权属单位);
2. a location rule: an area such as a park or a river bank owned by a body (the smallest
   area containing the point wins), possibly with assisting departments (a joint case);
3. the class's default owner;
4. the grid's street office, owner of last resort (属地兜底).
A rule naming a department the pack does not know is skipped, so the next one decides.

The handling deadline comes from the class, the report's urgency and the city's working-time
calendar (`SlaPolicy.deadline`, the computation the SLA engine uses too); a year nobody
supplied a calendar for is reckoned on weekends alone and named in `assumed_years`. A
deadline the command centre gives by hand is taken as given.

Department actions (acknowledge, handled, return, extension and parking requests, resume,
explain) and the command centre's (dispatch by hand, approve or deny a request) are checked
here: who may act on the case, and whether its state allows the action. A refusal raises
`Rejected` (or `InvalidTransition`) and nothing is published.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from gridloop.citypack import CityPack
from gridloop.citypack.sla import Deadline
from gridloop.errors import Rejected
from gridloop.lifecycle import State, next_state
from schemas.events import (
    Actor,
    CaseAcknowledged,
    CaseDispatched,
    CaseExplained,
    CaseExtended,
    CaseHandled,
    CaseParked,
    CaseResumed,
    CaseReturned,
    ExtensionDenied,
    ExtensionRequested,
    Kind,
    ParkingDenied,
    ParkingRequested,
    Point,
    Role,
    RoutingBasis,
    Stage,
)
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
from services.projections.core import CaseView, PendingRequest

COMMAND_CENTRE = Actor(role=Role.command_centre, id="auto-dispatch")
# States in which a department holds the case.
HELD = frozenset({State.dispatched, State.parked})


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
    """The command centre's answer to a pending request."""

    dispatcher: PersonId
    reason: Note = None
    # Approving an extension: a deadline other than the one asked for.
    deadline: DeadlineIn | None = None


class DispatchIn(_In):
    """The command centre dispatches (or re-dispatches, 改派) a case by hand."""

    dispatcher: PersonId
    department: DepartmentCode
    assisting: Assisting = []
    deadline: DeadlineIn | None = None  # default: the class's handling limit from now
    reason: Reason


# --- routing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Routed:
    """The lead department, the assisting ones, and which rule chose them (and why)."""

    department: str
    assisting: tuple[str, ...]
    basis: RoutingBasis
    rule: str


def route(
    pack: CityPack,
    kind: Kind,
    class_code: str,
    grid_code: str,
    point: Point | None = None,
    component_id: str | None = None,
) -> Routed:
    """The owner of the problem, by the most specific rule that names a known department."""
    known = pack.departments
    component = pack.components.get(component_id) if component_id else None
    if component is not None:
        for role, code in (("maintainer", component.maintainer), ("owner", component.owner)):
            if code in known:
                return Routed(
                    code, (), "component", f"{role} of component {component.id} ({component.name})"
                )
    if point is not None:
        rule = pack.routing.match(point.lon, point.lat, kind, class_code, known)
        if rule is not None:
            assisting = tuple(a for a in rule.assisting if a in known)
            return Routed(rule.owner, assisting, "location", f"location rule {rule.name}")
    cls = pack.classes.get((kind, class_code))
    if cls is not None and cls.owner in known:
        return Routed(cls.owner, (), "class_default", f"default owner of {kind} class {class_code}")
    street = pack.streets[grid_code[6:9]]
    return Routed(
        street.office,
        (),
        "street_office",
        f"street office of grid {grid_code} (owner of last resort)",
    )


def handling_deadline(
    pack: CityPack,
    kind: Kind | None,
    class_code: str | None,
    urgency: str | None,
    since: datetime,
) -> Deadline:
    """The handling deadline of a case of this class and urgency dispatched from `since`,
    on the class's clock and the city's calendar."""
    cls = pack.classes.get((kind, class_code)) if kind and class_code else None
    deadline = pack.sla.deadline(Stage.handle, kind, class_code, urgency, since)
    if cls is None or deadline is None:
        raise Rejected(409, ("case", "class_code"), "the case has no known class", "unknown_class")
    return deadline


def superseded(case_version: int, seen_version: int) -> bool:
    """Whether the case went past the filing (or rework) a reaction is about: voided, or
    dispatched by hand, while that event waited for a lagging or restarted dispatcher.
    Dispatching then would hand a department a case that is no longer theirs; and if the
    newer event is our own earlier dispatch (a crash before the commit), it is in the log."""
    return case_version > seen_version


def decide_dispatch(
    pack: CityPack,
    case_id: str,
    version: int,
    kind: Kind,
    class_code: str,
    grid_code: str,
    since: datetime,
    point: Point | None = None,
    component_id: str | None = None,
    urgency: str | None = None,
) -> CaseDispatched:
    """Dispatch with the handling deadline reckoned from `since`, the time of the event
    that made the case dispatchable, so re-deriving the event gives the same deadline."""
    routed = route(pack, kind, class_code, grid_code, point, component_id)
    deadline = handling_deadline(pack, kind, class_code, urgency, since)
    return CaseDispatched(
        case_id=case_id,
        version=version + 1,
        actor=COMMAND_CENTRE,
        department=routed.department,
        assisting=list(routed.assisting),
        basis=routed.basis,
        deadline=deadline.due,
        assumed_years=list(deadline.assumed_years),
        rule=routed.rule[:200],
    )


def decide_rework_dispatch(
    pack: CityPack, case: CaseView, version: int, since: datetime
) -> CaseDispatched:
    """Rework (返工) goes back to the department that handled the case, with a new deadline."""
    assert case.kind is not None and case.class_code and case.grid_code
    if case.department is None or case.department not in pack.departments:
        return decide_dispatch(
            pack,
            case.case_id,
            version,
            case.kind,
            case.class_code,
            case.grid_code,
            since,
            urgency=case.urgency,
        )
    deadline = handling_deadline(pack, case.kind, case.class_code, case.urgency, since)
    return CaseDispatched(
        case_id=case.case_id,
        version=version + 1,
        actor=COMMAND_CENTRE,
        department=case.department,
        assisting=list(case.assisting),
        deadline=deadline.due,
        assumed_years=list(deadline.assumed_years),
        rule=f"rework: back to {case.department}, which handled it",
    )


def decide_manual_dispatch(
    pack: CityPack, case: CaseView, order: DispatchIn, now: datetime
) -> CaseDispatched:
    """A dispatcher sends the case by hand: first dispatch, after a return, or re-dispatch."""
    for n, code in enumerate([order.department, *order.assisting]):
        loc = ("body", "department") if n == 0 else ("body", "assisting", str(n - 1))
        if code not in pack.departments:
            raise Rejected(422, loc, f"unknown department {code}", "unknown_department")
    if order.department in order.assisting or len(set(order.assisting)) < len(order.assisting):
        raise Rejected(
            422,
            ("body", "assisting"),
            "a department appears twice (the lead cannot also assist)",
            "duplicate_department",
        )
    next_state(case.state, "dispatched")
    assumed: tuple[int, ...] = ()
    deadline = order.deadline
    if deadline is None:
        reckoned = handling_deadline(pack, case.kind, case.class_code, case.urgency, now)
        deadline, assumed = reckoned.due, reckoned.assumed_years
    if deadline <= now:
        raise Rejected(422, ("body", "deadline"), "the deadline has passed", "deadline_passed")
    return CaseDispatched(
        case_id=case.case_id,
        version=case.version + 1,
        actor=Actor(role=Role.command_centre, id=order.dispatcher),
        department=order.department,
        assisting=order.assisting,
        basis="manual",
        deadline=deadline,
        assumed_years=list(assumed),
        rule=f"dispatched by hand by {order.dispatcher}"[:200],
        reason=order.reason,
    )


# --- department actions ----------------------------------------------------------------


def _department(department: str, handler_id: str) -> Actor:
    return Actor(role=Role.department, id=f"{department}/{handler_id}")


def authorize(case: CaseView, department: str, assisting_too: bool = False) -> None:
    """Only the lead department (or, for some actions, an assisting one) acts on a case."""
    if case.department == department:
        return
    if assisting_too and department in case.assisting:
        return
    raise Rejected(
        403,
        ("path", "department"),
        f"case {case.case_id} is not dispatched to {department}",
        "forbidden",
    )


def _held(case: CaseView, action: str, states: Sequence[State] = (State.dispatched,)) -> None:
    if case.state not in states:
        allowed = ", ".join(sorted(states))
        raise Rejected(
            409,
            ("state",),
            f"cannot {action} a case that is {case.state}; allowed from: {allowed}",
            "invalid_transition",
        )


def decide_acknowledge(case: CaseView, department: str, answer: AcknowledgeIn) -> CaseAcknowledged:
    """The department confirms receipt (签收); the lead and assisting departments may."""
    authorize(case, department, assisting_too=True)
    _held(case, "acknowledge", sorted(HELD))
    return CaseAcknowledged(
        case_id=case.case_id,
        case_version=case.version,
        actor=_department(department, answer.handler_id),
        department=department,
    )


def decide_handled(case: CaseView, department: str, answer: HandledIn) -> CaseHandled:
    """A department reports the case handled (处理反馈); only the lead department may."""
    authorize(case, department)
    next_state(case.state, "handled")
    return CaseHandled(
        case_id=case.case_id,
        version=case.version + 1,
        actor=_department(department, answer.handler_id),
        department=department,
        note=answer.note,
        photos=[str(p) for p in answer.photos],
    )


def decide_return(case: CaseView, department: str, answer: ReturnIn) -> CaseReturned:
    """Not ours (回退): back to the command centre, which re-dispatches; counted against
    dispatch accuracy."""
    authorize(case, department)
    next_state(case.state, "returned")
    return CaseReturned(
        case_id=case.case_id,
        version=case.version + 1,
        actor=_department(department, answer.handler_id),
        department=department,
        reason=answer.reason,
    )


def _no_pending(case: CaseView) -> None:
    if case.pending_request is not None:
        pending = case.pending_request
        raise Rejected(
            409,
            ("state", "pending_request"),
            f"the {pending.kind} request {pending.request_id} awaits the command centre",
            "request_pending",
        )


def decide_extension_request(
    case: CaseView, department: str, answer: ExtensionIn, request_id: str, now: datetime
) -> ExtensionRequested:
    """延期: a later deadline, which the command centre approves (case.extended) or denies."""
    authorize(case, department)
    next_state(case.state, "extended")
    _no_pending(case)
    if answer.deadline.utcoffset() is None:
        raise Rejected(
            422, ("body", "deadline"), "the deadline needs a UTC offset", "timezone_missing"
        )
    if answer.deadline <= max(now, case.deadline or now):
        raise Rejected(
            422,
            ("body", "deadline"),
            "an extension must end after the current deadline and after now",
            "deadline_not_later",
        )
    return ExtensionRequested(
        case_id=case.case_id,
        case_version=case.version,
        actor=_department(department, answer.handler_id),
        department=department,
        request_id=request_id,
        reason=answer.reason,
        deadline=answer.deadline,
    )


def decide_parking_request(
    case: CaseView, department: str, answer: ParkingIn, request_id: str
) -> ParkingRequested:
    """挂账: the clock pauses once the command centre approves (case.parked)."""
    authorize(case, department)
    next_state(case.state, "parked")
    _no_pending(case)
    return ParkingRequested(
        case_id=case.case_id,
        case_version=case.version,
        actor=_department(department, answer.handler_id),
        department=department,
        request_id=request_id,
        reason=answer.reason,
    )


def decide_resume(case: CaseView, actor: Actor, reason: str | None) -> CaseResumed:
    """A parked case's clock runs again; the lead department or the command centre."""
    next_state(case.state, "resumed")
    return CaseResumed(case_id=case.case_id, version=case.version + 1, actor=actor, reason=reason)


def decide_explain(
    case: CaseView, department: str, answer: ExplainIn, now: datetime
) -> CaseExplained:
    """An overdue case gets an explicit explanation from its department."""
    authorize(case, department)
    _held(case, "explain", sorted(HELD))
    if case.deadline is None or now <= case.deadline:
        raise Rejected(
            409,
            ("state", "deadline"),
            f"case {case.case_id} is not overdue (due {case.deadline})",
            "not_overdue",
        )
    return CaseExplained(
        case_id=case.case_id,
        case_version=case.version,
        actor=_department(department, answer.handler_id),
        department=department,
        explanation=answer.explanation,
    )


# --- the command centre's decisions on requests ----------------------------------------

Denied = TypeVar("Denied", ExtensionDenied, ParkingDenied)


def _pending(case: CaseView, kind: str) -> PendingRequest:
    pending = case.pending_request
    if pending is None or pending.kind != kind or pending.case_version != case.version:
        raise Rejected(
            409,
            ("state", "pending_request"),
            f"case {case.case_id} has no pending {kind} request",
            "no_pending_request",
        )
    return pending


def decide_extension(
    case: CaseView, decision: DecisionIn, approve: bool, now: datetime
) -> CaseExtended | ExtensionDenied:
    pending = _pending(case, "extension")
    actor = Actor(role=Role.command_centre, id=decision.dispatcher)
    if not approve:
        return _denial(ExtensionDenied, case, actor, pending, decision)
    next_state(case.state, "extended")
    deadline = decision.deadline or pending.deadline
    assert deadline is not None
    if deadline <= now:
        raise Rejected(422, ("body", "deadline"), "the deadline has passed", "deadline_passed")
    return CaseExtended(
        case_id=case.case_id,
        version=case.version + 1,
        actor=actor,
        deadline=deadline,
        request_id=pending.request_id,
        reason=decision.reason or pending.reason,
    )


def decide_parking(
    case: CaseView, decision: DecisionIn, approve: bool
) -> CaseParked | ParkingDenied:
    pending = _pending(case, "parking")
    actor = Actor(role=Role.command_centre, id=decision.dispatcher)
    if not approve:
        return _denial(ParkingDenied, case, actor, pending, decision)
    next_state(case.state, "parked")
    return CaseParked(
        case_id=case.case_id,
        version=case.version + 1,
        actor=actor,
        request_id=pending.request_id,
        reason=decision.reason or pending.reason,
    )


def _denial(
    model: type[Denied], case: CaseView, actor: Actor, pending: PendingRequest, decision: DecisionIn
) -> Denied:
    """A request denied: the case does not move; the department is told why."""
    return model(
        case_id=case.case_id,
        case_version=case.version,
        actor=actor,
        department=pending.department,
        request_id=pending.request_id,
        reason=_reason_of_denial(decision),
    )


def _reason_of_denial(decision: DecisionIn) -> str:
    if not decision.reason:
        raise Rejected(422, ("body", "reason"), "a denial needs a reason", "missing")
    return decision.reason
