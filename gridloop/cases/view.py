"""The view of a case that commands decide on, and how each event changes it. Pure.

`evolve` is the case's write model: the command path (`gridloop.commands`) keeps each case's
view in its head, folded from the events it claimed, so a command decides on the case's
latest committed version, never on a projection that lags the log. The projection
(`services/projections`) keeps a richer document for reading; both follow the lifecycle's
one table of transitions (`gridloop.lifecycle.TRANSITIONS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from gridloop.lifecycle import TRANSITIONS, State, transition_name
from schemas.envelope import Envelope
from schemas.events import (
    CallbackAnswered,
    CallbackUnreached,
    CaseAcknowledged,
    CaseDispatched,
    CaseEvent,
    CaseExplained,
    CaseExtended,
    CaseFiled,
    CaseMerged,
    CaseParked,
    CaseReported,
    CaseResumed,
    CaseSplit,
    CaseUrged,
    Channel,
    DisputeConfirmed,
    DisputeEscalated,
    DisputeExplained,
    DisputeTier,
    ExtensionDenied,
    ExtensionRequested,
    Kind,
    ParkingDenied,
    ParkingRequested,
    Party,
    Point,
    ResumeDenied,
    ResumeRequested,
    ReturnDenied,
    ReturnRequested,
    UrgeReplied,
    VoidDenied,
    VoidRequested,
)

REQUEST_KINDS = {
    ExtensionRequested: "extension",
    ParkingRequested: "parking",
    ReturnRequested: "return",
    ResumeRequested: "resume",
    VoidRequested: "void",
}
# A request awaiting the shift lead (a department's, or an intake operator's void) and its
# refusal.
REQUESTS = ExtensionRequested | ParkingRequested | ReturnRequested | ResumeRequested | VoidRequested
DENIALS = ExtensionDenied | ParkingDenied | ReturnDenied | ResumeDenied | VoidDenied


@dataclass(frozen=True)
class PendingRequest:
    """A department's extension, parking, return or resume request, or an intake
    operator's void request, awaiting the shift lead."""

    request_id: str
    kind: str  # extension | parking | return | resume | void
    department: str | None  # None: an intake operator's void request
    reason: str
    case_version: int
    deadline: datetime | None = None


@dataclass(frozen=True)
class TierSpell:
    """A tier's time holding a dispute: from the version (and time) that put it there to
    the escalation that took it up (`until`, `cause`), or still running (`until` None)."""

    tier: DisputeTier
    office: str
    version: int
    since: datetime
    until: datetime | None = None
    cause: str | None = None  # breach | beyond_authority


@dataclass(frozen=True)
class CaseView:
    """What commands decide on: the state and version, the report's facts, who holds the
    case and until when, and a pending request."""

    case_id: str
    state: State
    version: int
    kind: Kind | None = None
    class_code: str | None = None
    grid_code: str | None = None
    department: str | None = None
    component_id: str | None = None
    urgency: str | None = None
    assisting: tuple[str, ...] = ()
    deadline: datetime | None = None
    pending_request: PendingRequest | None = None
    point: Point | None = None
    channel: Channel | None = None
    reporter_id: str | None = None  # the citizen's credential or the supervisor: who may rate
    merged_into: str | None = None
    closed_at: datetime | None = None
    # Departments that acknowledged (签收) the current dispatch, and the newest version
    # its department explained: an annotation given twice would be one fact (one id).
    acknowledged: tuple[str, ...] = ()
    explained: int = 0
    parked_at: datetime | None = None  # when it was last parked (挂账): its clock stood still
    # The open 督办: its id, the department that owes the reply, and by when.
    urge_id: str | None = None
    urged_department: str | None = None
    urge_reply_by: datetime | None = None
    # 回访: the reporter left a contact (`reporter.contact`), so a closure owes a callback;
    # the calls of the current closure that reached nobody, and whether its callback is
    # over (answered, or invalid after the city's tries).
    reachable: bool = False
    callback_tries: int = 0
    callback_over: bool = False
    # A dispute (kind `dispute`): each tier that held it, the last holding it now; the
    # offices that explained their overdue spell; the parties who confirmed (验收) at
    # `confirmed_version`.
    spells: tuple[TierSpell, ...] = ()
    explained_offices: tuple[str, ...] = ()
    confirmed: tuple[Party, ...] = ()
    confirmed_version: int = 0

    @property
    def spell(self) -> TierSpell | None:
        """The tier holding the dispute now (None: not a dispute)."""
        return self.spells[-1] if self.spells else None


def evolve(view: CaseView | None, env: Envelope) -> CaseView:
    """The view after `env`, an event of this case (a report opens the view)."""
    data = env.data
    if isinstance(data, CaseReported):
        return _reported(data, env.time)
    if view is None:
        raise ValueError(f"{data.case_id}: a {env.type} before the case was reported")
    if isinstance(data, CaseEvent):
        return _transition(view, data, env.time)
    if isinstance(data, REQUESTS):
        kind = REQUEST_KINDS[type(data)]
        pending = PendingRequest(
            data.request_id,
            kind,
            getattr(data, "department", None),  # an operator's void: none
            data.reason,
            data.case_version,
            getattr(data, "deadline", None),
        )
        return replace(view, pending_request=pending)
    if isinstance(data, DENIALS):
        return replace(view, pending_request=None)
    if isinstance(data, CaseUrged):
        return replace(
            view,
            urge_id=data.urge_id,
            urged_department=data.department,
            urge_reply_by=data.reply_by,
        )
    if isinstance(data, UrgeReplied) and data.urge_id == view.urge_id:
        return replace(view, urge_id=None, urged_department=None, urge_reply_by=None)
    if isinstance(data, CaseAcknowledged):
        return replace(view, acknowledged=(*view.acknowledged, data.department))
    if isinstance(data, CaseExplained):
        return replace(view, explained=max(view.explained, data.case_version))
    if isinstance(data, CallbackUnreached):
        tries = max(view.callback_tries, data.attempt)
        return replace(view, callback_tries=tries, callback_over=view.callback_over or data.invalid)
    if isinstance(data, CallbackAnswered):
        return replace(view, callback_over=True)
    if isinstance(data, DisputeExplained):
        return replace(view, explained_offices=(*view.explained_offices, data.office))
    if isinstance(data, DisputeConfirmed):
        return replace(view, confirmed=tuple(data.parties), confirmed_version=data.case_version)
    return view  # SLA facts: the case does not move


def fold(envs: Iterable[Envelope], view: CaseView | None = None) -> CaseView:
    """The view after each of `envs` in turn."""
    for env in envs:
        view = evolve(view, env)
    if view is None:
        raise ValueError("no events to fold")
    return view


def _reported(data: CaseReported, at: datetime) -> CaseView:
    # A dispute's grid mediates it first (its office is the grid's code).
    grid = (TierSpell("grid", data.grid_code, data.version, at),) if data.kind == "dispute" else ()
    return CaseView(
        spells=grid,
        case_id=data.case_id,
        state=State.reported,
        version=data.version,
        kind=data.kind,
        class_code=data.class_code,
        grid_code=data.grid_code,
        component_id=data.component_id,
        urgency=data.urgency,
        point=data.point,
        channel=data.channel,
        reporter_id=data.reporter.id,
        reachable=data.reporter.contact is not None,
    )


def _up(spells: tuple[TierSpell, ...], data: DisputeEscalated, at: datetime) -> tuple[
    TierSpell, ...
]:  # fmt: skip
    """The spells after an escalation: the tier it left ends, the next one starts."""
    ended = tuple(replace(s, until=at, cause=data.cause) if s.until is None else s for s in spells)
    return (*ended, TierSpell(data.tier, data.office, data.version, at))


def _transition(view: CaseView, data: CaseEvent, at: datetime) -> CaseView:
    name = transition_name(data.ce_type)
    # A transition settles (or supersedes) any pending request, as the projection has it.
    changed = replace(view, state=TRANSITIONS[name][1], version=data.version, pending_request=None)
    if isinstance(data, CaseDispatched):
        return replace(
            changed,
            department=data.department,
            assisting=tuple(data.assisting),
            deadline=data.deadline,
            acknowledged=(),  # a new dispatch is acknowledged anew
        )
    if isinstance(data, CaseExtended):
        return replace(changed, deadline=data.deadline)
    if isinstance(data, CaseParked):
        return replace(changed, parked_at=at)
    if isinstance(data, CaseResumed) and data.deadline is not None:
        return replace(changed, deadline=data.deadline)  # moved by the time it was parked
    if isinstance(data, CaseMerged):
        return replace(changed, merged_into=data.into_case_id)
    if isinstance(data, DisputeEscalated):
        return replace(changed, spells=_up(view.spells, data, at))
    if isinstance(data, CaseSplit):
        return replace(changed, merged_into=None)
    if isinstance(data, CaseFiled):
        # The filing's class stands: the centre may correct the report's when it files.
        return replace(
            changed,
            kind=data.kind,
            class_code=data.class_code,
            grid_code=data.grid_code,
            component_id=data.component_id or view.component_id,
        )
    if name == "closed":
        # Each closure owes its own callback (a reopened case closed again is called again).
        return replace(changed, closed_at=at, callback_tries=0, callback_over=False)
    return changed
