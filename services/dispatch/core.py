"""Dispatch decisions. Pure: the city pack and facts in, events out.

Routing (`gridloop.citypack.owner`: the console suggests by it too), most specific rule
first, each decision explained in the event (`rule`, `basis`):
1. the component instance's maintainer (养护单位), else its owner (权属单位);
2. a location rule: an area such as a park or a river bank owned by a body (the smallest
   area containing the point wins), possibly with assisting departments (a joint case);
3. the class's default owner;
4. the grid's street office, owner of last resort (属地兜底).
A rule naming a department the pack does not know is skipped, so the next one decides.

The handling deadline comes from the class, the report's urgency and the city's working-time
calendar (`SlaPolicy.deadline`, the computation the SLA engine uses too), counted from the
dispatch itself (派遣: a first dispatch, a re-dispatch, a rework's); a year nobody supplied a
calendar for is reckoned on weekends and fixed-date holidays alone and named in
`assumed_years`. A deadline the command centre gives by hand is taken as given.

Department actions (acknowledge, handled, return, extension and parking requests, resume,
explain) and the command centre's (dispatch by hand, approve or deny a request) are the
commands of `commands.py`, decided here (`decide`): who may act on the case, and whether
its state allows the action. A refusal raises `Refused` (`InvalidTransition` among them)
and nothing is published. `react` is dispatch's own reaction to a filing or a rework.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from gridloop.cases import CaseView, PendingRequest
from gridloop.citypack import CityPack
from gridloop.citypack.owner import route
from gridloop.citypack.sla import Deadline
from gridloop.lifecycle import State, next_state
from gridloop.refusal import conflict, forbidden, invalid
from schemas.events import (
    Actor,
    CaseAcknowledged,
    CaseDispatched,
    CaseExplained,
    CaseExtended,
    CaseFiled,
    CaseHandled,
    CaseParked,
    CaseResumed,
    CaseReturned,
    CaseReworked,
    CaseUrged,
    EventData,
    ExtensionDenied,
    ExtensionRequested,
    Kind,
    ParkingDenied,
    ParkingRequested,
    Point,
    ResumeDenied,
    ResumeRequested,
    ReturnDenied,
    ReturnRequested,
    Role,
    Stage,
    UrgeReplied,
)
from services.dispatch.commands import (
    Acknowledge,
    AnswerRequest,
    Command,
    DispatchByHand,
    Explain,
    Handle,
    ReplyToUrge,
    RequestExtension,
    RequestParking,
    Resume,
    Return,
    Urge,
)

COMMAND_CENTRE = Actor(role=Role.command_centre, id="auto-dispatch")
# States in which a department holds the case.
HELD = frozenset({State.dispatched, State.parked})


def handling_deadline(
    pack: CityPack,
    kind: Kind | None,
    class_code: str | None,
    urgency: str | None,
    since: datetime,
    channel: str | None = None,
) -> Deadline:
    """The handling deadline of a case of this class and urgency dispatched from `since`,
    on the class's clock and the city's calendar (a hotline case's: its time class's)."""
    cls = pack.classes.get((kind, class_code)) if kind and class_code else None
    deadline = pack.sla.deadline(Stage.handle, kind, class_code, urgency, since, channel)
    if cls is None or deadline is None:
        raise conflict(("case", "class_code"), "the case has no known class", "unknown_class")
    return deadline


def react(
    pack: CityPack, case: CaseView, event: CaseFiled | CaseReworked, at: datetime
) -> list[CaseDispatched] | None:
    """The dispatch a filing or a rework calls for, made `at` (now: the department's
    handling time starts when the case is dispatched to it, so a dispatch that lags is the
    command centre's time alone), decided on the case's latest committed view; none if the
    case went past it (voided, dispatched by hand, or this reaction's own dispatch already
    claimed): a department must never get a case that is not theirs. None if the view is
    behind the event (a case from before heads, adopted from a projection that had not
    caught up): not decided yet."""
    if case.version < event.version:
        return None
    if case.version != event.version:
        return []
    if isinstance(event, CaseFiled):
        # The report's point decides location rules, its urgency the deadline.
        return [
            decide_dispatch(
                pack,
                case.case_id,
                event.version,
                event.kind,
                event.class_code,
                event.grid_code,
                at,
                point=case.point,
                component_id=event.component_id or case.component_id,
                urgency=case.urgency,
                channel=case.channel,
            )
        ]
    return [decide_rework_dispatch(pack, case, event.version, at)]


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
    channel: str | None = None,
) -> CaseDispatched:
    """Dispatch with the handling deadline reckoned from `since`, the time of the dispatch
    itself: the department's handling time starts when the case is dispatched to it."""
    routed = route(pack, kind, class_code, grid_code, point, component_id)
    deadline = handling_deadline(pack, kind, class_code, urgency, since, channel)
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
    """Rework (返工) goes back to the department that handled the case, with a new deadline
    reckoned from `since`, the time of this re-dispatch (the handling time restarts)."""
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
            channel=case.channel,
        )
    deadline = handling_deadline(
        pack, case.kind, case.class_code, case.urgency, since, case.channel
    )
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
    pack: CityPack, case: CaseView, order: DispatchByHand, now: datetime
) -> CaseDispatched:
    """A dispatcher sends the case by hand: first dispatch, after a return, or re-dispatch."""
    for n, code in enumerate([order.department, *order.assisting]):
        loc = ("body", "department") if n == 0 else ("body", "assisting", str(n - 1))
        if code not in pack.departments:
            raise invalid(loc, f"unknown department {code}", "unknown_department")
    if order.department in order.assisting or len(set(order.assisting)) < len(order.assisting):
        raise invalid(
            ("body", "assisting"),
            "a department appears twice (the lead cannot also assist)",
            "duplicate_department",
        )
    next_state(case.state, "dispatched")
    assumed: tuple[int, ...] = ()
    deadline = order.deadline
    if deadline is None:
        reckoned = handling_deadline(
            pack, case.kind, case.class_code, case.urgency, now, case.channel
        )
        deadline, assumed = reckoned.due, reckoned.assumed_years
    if deadline <= now:
        raise invalid(("body", "deadline"), "the deadline has passed", "deadline_passed")
    return CaseDispatched(
        case_id=case.case_id,
        version=case.version + 1,
        actor=Actor(
            role=Role.command_centre,
            id=order.dispatcher,
            person=_signed_in(order.person, order.dispatcher),
        ),
        department=order.department,
        assisting=list(order.assisting),
        basis="manual",
        deadline=deadline,
        assumed_years=list(assumed),
        rule=f"dispatched by hand by {order.dispatcher}"[:200],
        reason=order.reason,
    )


def decide(pack: CityPack, case: CaseView, command: Command, now: datetime) -> EventData:
    """The event `command` makes of `case`, or a refusal."""
    match command:
        case Acknowledge():
            return decide_acknowledge(case, command)
        case Handle():
            return decide_handled(case, command)
        case Return():
            return decide_return(pack, case, command)
        case RequestExtension():
            return decide_extension_request(case, command, now)
        case RequestParking():
            return decide_parking_request(case, command)
        case Resume():
            return decide_resume(case, command, pack, now)
        case Explain():
            return decide_explain(case, command, now)
        case DispatchByHand():
            return decide_manual_dispatch(pack, case, command, now)
        case AnswerRequest(kind="extension"):
            return decide_extension(case, command, now)
        case AnswerRequest(kind="return"):
            return decide_return_request(case, command)
        case AnswerRequest(kind="resume"):
            return decide_resume_request(pack, case, command, now)
        case AnswerRequest():
            return decide_parking(case, command)
        case Urge():
            return decide_urge(pack, case, command, now)
        case ReplyToUrge():
            return decide_urge_reply(case, command)


# --- department actions ----------------------------------------------------------------


def _department(department: str, handler_id: str) -> Actor:
    return Actor(role=Role.department, id=f"{department}/{handler_id}")


def authorize(case: CaseView, department: str, assisting_too: bool = False) -> None:
    """Only the lead department (or, for some actions, an assisting one) acts on a case."""
    if case.department == department:
        return
    if assisting_too and department in case.assisting:
        return
    raise forbidden(
        ("path", "department"), f"case {case.case_id} is not dispatched to {department}"
    )


def _held(case: CaseView, action: str, states: Sequence[State] = (State.dispatched,)) -> None:
    if case.state not in states:
        allowed = ", ".join(sorted(states))
        raise conflict(
            ("state",),
            f"cannot {action} a case that is {case.state}; allowed from: {allowed}",
            "invalid_transition",
        )


def decide_acknowledge(case: CaseView, ack: Acknowledge) -> CaseAcknowledged:
    """The department confirms receipt (签收); the lead and assisting departments may."""
    authorize(case, ack.department, assisting_too=True)
    _held(case, "acknowledge", sorted(HELD))
    if ack.department in case.acknowledged:
        raise conflict(
            ("state",),
            f"{ack.department} acknowledged this dispatch of case {case.case_id} already",
            "already_acknowledged",
        )
    return CaseAcknowledged(
        case_id=case.case_id,
        case_version=case.version,
        actor=_department(ack.department, ack.handler_id),
        department=ack.department,
    )


def decide_handled(case: CaseView, handled: Handle) -> CaseHandled:
    """A department reports the case handled (处理反馈); only the lead department may."""
    authorize(case, handled.department)
    next_state(case.state, "handled")
    return CaseHandled(
        case_id=case.case_id,
        version=case.version + 1,
        actor=_department(handled.department, handled.handler_id),
        department=handled.department,
        note=handled.note,
        photos=list(handled.photos),
    )


def decide_return(
    pack: CityPack, case: CaseView, returned: Return
) -> CaseReturned | ReturnRequested:
    """Not ours (回退): back to the command centre, which re-dispatches; counted against
    the command centre's dispatch accuracy, not the department's. Where the city pack
    says so, a request the shift lead approves (case.returned) or denies."""
    authorize(case, returned.department)
    next_state(case.state, "returned")
    if pack.sla.returns_need_approval:
        _no_pending(case)
        return ReturnRequested(
            case_id=case.case_id,
            case_version=case.version,
            actor=_department(returned.department, returned.handler_id),
            department=returned.department,
            request_id=returned.request_id,
            reason=returned.reason,
        )
    return CaseReturned(
        case_id=case.case_id,
        version=case.version + 1,
        actor=_department(returned.department, returned.handler_id),
        department=returned.department,
        reason=returned.reason,
    )


def _no_pending(case: CaseView) -> None:
    if case.pending_request is not None:
        pending = case.pending_request
        raise conflict(
            ("state", "pending_request"),
            f"the {pending.kind} request {pending.request_id} awaits the shift lead",
            "request_pending",
        )


def decide_extension_request(
    case: CaseView, asked: RequestExtension, now: datetime
) -> ExtensionRequested:
    """延期: a later deadline, which the command centre approves (case.extended) or denies."""
    authorize(case, asked.department)
    next_state(case.state, "extended")
    _no_pending(case)
    if asked.deadline.utcoffset() is None:
        raise invalid(("body", "deadline"), "the deadline needs a UTC offset", "timezone_missing")
    if asked.deadline <= max(now, case.deadline or now):
        raise invalid(
            ("body", "deadline"),
            "an extension must end after the current deadline and after now",
            "deadline_not_later",
        )
    return ExtensionRequested(
        case_id=case.case_id,
        case_version=case.version,
        actor=_department(asked.department, asked.handler_id),
        department=asked.department,
        request_id=asked.request_id,
        reason=asked.reason,
        deadline=asked.deadline,
    )


def decide_parking_request(case: CaseView, asked: RequestParking) -> ParkingRequested:
    """挂账: the clock pauses once the command centre approves (case.parked)."""
    authorize(case, asked.department)
    next_state(case.state, "parked")
    _no_pending(case)
    return ParkingRequested(
        case_id=case.case_id,
        case_version=case.version,
        actor=_department(asked.department, asked.handler_id),
        department=asked.department,
        request_id=asked.request_id,
        reason=asked.reason,
    )


def decide_resume(
    case: CaseView, resume: Resume, pack: CityPack, now: datetime
) -> CaseResumed | ResumeRequested:
    """A parked case's clock runs again; the lead department or the command centre. Where
    the city pack says so, a department's resumption is a request (挂账恢复申请) the shift
    lead approves (case.resumed) or denies; the command centre's never waits."""
    if resume.department is not None:
        authorize(case, resume.department)
    next_state(case.state, "resumed")
    if resume.department is not None and pack.sla.resumes_need_approval:
        _no_pending(case)
        if not resume.reason:
            raise invalid(("body", "reason"), "a resume request needs a reason", "missing")
        return ResumeRequested(
            case_id=case.case_id,
            case_version=case.version,
            actor=resume.actor,
            department=resume.department,
            request_id=resume.request_id,
            reason=resume.reason,
        )
    return _resumed(case, pack, now, resume.actor, resume.reason)


def _resumed(
    case: CaseView,
    pack: CityPack,
    now: datetime,
    actor: Actor,
    reason: str | None,
    request_id: str | None = None,
) -> CaseResumed:
    """The case resumed at `now`: its deadline moves by the time it was parked
    (`SlaPolicy.resumed`, on the class's clock), and the event carries it, so the case
    record, the department and the SLA engine show the one deadline."""
    deadline: datetime | None = None
    assumed: tuple[int, ...] = ()
    if case.deadline is not None and case.parked_at is not None:
        moved = pack.sla.resumed(
            case.kind,
            case.class_code,
            case.urgency,
            case.deadline,
            case.parked_at,
            now,
            case.channel,
        )
        deadline, assumed = moved.due, moved.assumed_years
    return CaseResumed(
        case_id=case.case_id,
        version=case.version + 1,
        actor=actor,
        reason=reason,
        deadline=deadline,
        assumed_years=list(assumed),
        request_id=request_id,
    )


def decide_explain(case: CaseView, explained: Explain, now: datetime) -> CaseExplained:
    """An overdue case gets an explicit explanation from its department."""
    authorize(case, explained.department)
    _held(case, "explain", sorted(HELD))
    if case.explained >= case.version:
        raise conflict(
            ("state",),
            f"case {case.case_id} is explained already at version {case.version}",
            "already_explained",
        )
    # A parked case's clock stands still: it is late only if it was parked late.
    at = case.parked_at if case.state is State.parked and case.parked_at else now
    if case.deadline is None or at <= case.deadline:
        raise conflict(
            ("state", "deadline"),
            f"case {case.case_id} is not overdue (due {case.deadline})",
            "not_overdue",
        )
    return CaseExplained(
        case_id=case.case_id,
        case_version=case.version,
        actor=_department(explained.department, explained.handler_id),
        department=explained.department,
        explanation=explained.explanation,
    )


# --- the command centre's decisions on requests ----------------------------------------

Denied = TypeVar("Denied", ExtensionDenied, ParkingDenied, ReturnDenied, ResumeDenied)


def _lead(decision: AnswerRequest) -> Actor:
    """The shift lead (值班长) who decides a request."""
    person = _signed_in(decision.person, decision.dispatcher)
    return Actor(role=Role.shift_lead, id=decision.dispatcher, person=person)


def _signed_in(person: str | None, named: str) -> str | None:
    """The person whose session sent the command, when the body named someone else: the
    events record both, and the staff's scores go to the person signed in."""
    return person[:64] if person and person != named else None


def _pending(case: CaseView, kind: str) -> PendingRequest:
    pending = case.pending_request
    if pending is None or pending.kind != kind or pending.case_version != case.version:
        raise conflict(
            ("state", "pending_request"),
            f"case {case.case_id} has no pending {kind} request",
            "no_pending_request",
        )
    return pending


def decide_extension(
    case: CaseView, decision: AnswerRequest, now: datetime
) -> CaseExtended | ExtensionDenied:
    pending = _pending(case, "extension")
    actor = _lead(decision)
    if not decision.approve:
        return _denial(ExtensionDenied, case, actor, pending, decision)
    next_state(case.state, "extended")
    deadline = decision.deadline or pending.deadline
    assert deadline is not None
    if deadline <= now:
        raise invalid(("body", "deadline"), "the deadline has passed", "deadline_passed")
    if case.deadline is not None and deadline <= case.deadline:
        # The SLA engine never shortens a clock: an earlier date would show two deadlines.
        raise invalid(
            ("body", "deadline"),
            f"an extension must end after the current deadline ({case.deadline.isoformat()})",
            "deadline_not_later",
        )
    return CaseExtended(
        case_id=case.case_id,
        version=case.version + 1,
        actor=actor,
        deadline=deadline,
        request_id=pending.request_id,
        reason=decision.reason or pending.reason,
    )


def decide_parking(case: CaseView, decision: AnswerRequest) -> CaseParked | ParkingDenied:
    pending = _pending(case, "parking")
    actor = _lead(decision)
    if not decision.approve:
        return _denial(ParkingDenied, case, actor, pending, decision)
    next_state(case.state, "parked")
    return CaseParked(
        case_id=case.case_id,
        version=case.version + 1,
        actor=actor,
        request_id=pending.request_id,
        reason=decision.reason or pending.reason,
    )


def decide_return_request(case: CaseView, decision: AnswerRequest) -> CaseReturned | ReturnDenied:
    """The shift lead approves a return (the case goes back to the command centre to be
    dispatched again) or denies it (the department keeps it)."""
    pending = _pending(case, "return")
    actor = _lead(decision)
    if not decision.approve:
        return _denial(ReturnDenied, case, actor, pending, decision)
    next_state(case.state, "returned")
    return CaseReturned(
        case_id=case.case_id,
        version=case.version + 1,
        actor=actor,
        department=pending.department,
        request_id=pending.request_id,
        reason=decision.reason or pending.reason,
    )


def decide_resume_request(
    pack: CityPack, case: CaseView, decision: AnswerRequest, now: datetime
) -> CaseResumed | ResumeDenied:
    """The shift lead approves a parked case's resumption (its clock runs again from now,
    the deadline moved by the time it stood still) or denies it (it stays parked)."""
    pending = _pending(case, "resume")
    actor = _lead(decision)
    if not decision.approve:
        return _denial(ResumeDenied, case, actor, pending, decision)
    next_state(case.state, "resumed")
    reason = decision.reason or pending.reason
    return _resumed(case, pack, now, actor, reason, pending.request_id)


def _denial(
    model: type[Denied],
    case: CaseView,
    actor: Actor,
    pending: PendingRequest,
    decision: AnswerRequest,
) -> Denied:
    """A request denied: the case does not move; the department is told why."""
    if not decision.reason:
        raise invalid(("body", "reason"), "a denial needs a reason", "missing")
    return model(
        case_id=case.case_id,
        case_version=case.version,
        actor=actor,
        department=pending.department,
        request_id=pending.request_id,
        reason=decision.reason,
    )


# --- 督办: the shift lead urges, the department replies --------------------------------


def decide_urge(pack: CityPack, case: CaseView, urge: Urge, now: datetime) -> CaseUrged:
    """The shift lead urges the department holding the case; it owes a reply by the pack's
    reply limit, on the pack's calendar. One open urge at a time: a second waits for the
    reply to the first."""
    _held(case, "urge", sorted(HELD))
    if case.department is None:
        raise conflict(("state",), f"case {case.case_id} has no department", "no_department")
    if case.urge_id is not None:
        raise conflict(
            ("state", "urge"),
            f"urge {case.urge_id} awaits {case.urged_department}'s reply",
            "urge_pending",
        )
    reply_by = pack.sla.reply_by(now)
    return CaseUrged(
        case_id=case.case_id,
        case_version=case.version,
        actor=Actor(role=Role.shift_lead, id=urge.lead),
        department=case.department,
        urge_id=urge.urge_id,
        message=urge.message,
        reply_by=reply_by.due,
        assumed_years=list(reply_by.assumed_years),
    )


def decide_urge_reply(case: CaseView, reply: ReplyToUrge) -> UrgeReplied:
    """The urged department answers the open urge (late or not: a late reply still
    counts as a reply, and evaluation marks it late)."""
    if case.urge_id is None or case.urged_department is None:
        raise conflict(("state", "urge"), f"case {case.case_id} has no urge to reply to", "no_urge")
    if case.urged_department != reply.department:
        raise forbidden(
            ("path", "department"),
            f"the urge on case {case.case_id} is {case.urged_department}'s to answer",
        )
    return UrgeReplied(
        case_id=case.case_id,
        case_version=case.version,
        actor=_department(reply.department, reply.handler_id),
        department=reply.department,
        urge_id=case.urge_id,
        reply=reply.reply,
    )
