"""A case's evaluation facts (评价要素), folded from its events. Pure: no I/O, no wall clock.

One case's events reach evaluation through several topics whose relative order is not
guaranteed, so facts are never accumulated in arrival order: every time an event arrives,
the case's whole set of events is folded again, lifecycle events by case version, then the
annotations (SLA breaches, acknowledgements) matched to what they annotate. The same set
gives the same facts whatever the order it came in.

A handling round (处置轮次) is one stretch of the handling clock, opened by a dispatch (a
first one, a re-dispatch, a rework's): the deadline the department was told, moved by
extensions and by resumptions after parking. The SLA engine's breach of a round's clock
(`SlaBreach`, stage `handle`, `case_version` = the version that opened the round) says it
was late; a round handled after its known deadline is late even when no breach was read.
(A parking resumed without a deadline, as before issue 19, left the deadline to the engine.)

The stages before and after the department's are tasks (`Task`) of whoever does them, each
on the SLA engine's clock of its stage: the command centre's dispatch (opened by a filing,
a return or a rework; done by the next dispatch), a supervisor's verification of a citizen
report (核实: given to the grid's supervisor, `verifier`; done by whoever verifies or
refutes it) and on-site check (核查: opened by the handling; done by whoever checks it;
until then the case's own supervisor answers for it). A task is late by the engine's breach
of its clock, or done after its known deadline (the verification's `verification_due`).

A 督办 (`CaseUrged`) owes the urged department's reply by `reply_by`: late when the reply
came after it, or when none came and the case's log already holds an event timed after it
(facts have no wall clock: an urge nobody answered is known late once anything later is
read of its case, such as the SLA engine's breach of an overdue handling or the next
urge).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from gridloop.lifecycle import TRANSITIONS, State, transition_name
from schemas.envelope import Envelope
from schemas.events import (
    Actor,
    CallbackAnswered,
    CallbackUnreached,
    CaseAcknowledged,
    CaseAnswered,
    CaseChecked,
    CaseDispatched,
    CaseEvent,
    CaseExtended,
    CaseFiled,
    CaseParked,
    CaseReported,
    CaseResumed,
    CaseReturned,
    CaseSelfHandled,
    CaseUrged,
    CaseVoided,
    Channel,
    DisputeClosed,
    DisputeEscalated,
    ExtensionDenied,
    ExtensionRequested,
    FeedbackGiven,
    ParkingDenied,
    ParkingRequested,
    ResumeDenied,
    ResumeRequested,
    ReturnDenied,
    ReturnRequested,
    Role,
    SlaBreach,
    Stage,
    UrgeReplied,
    VoidDenied,
    VoidRequested,
)

CLOSED_STATES = frozenset({State.closed, State.evaluated})
# The shift lead's decisions on a request: an approval is the lifecycle event naming it,
# a denial its annotation (extension, parking, return, resumption; an operator's void).
_REQUESTS = (
    ExtensionRequested | ParkingRequested | ReturnRequested | ResumeRequested | VoidRequested
)
_DECISIONS = (
    CaseExtended
    | CaseParked
    | CaseReturned
    | CaseResumed
    | CaseVoided
    | ExtensionDenied
    | ParkingDenied
    | ReturnDenied
    | ResumeDenied
    | VoidDenied
)


class Round(BaseModel):
    """One handling round of one department."""

    opened: int  # the case version that opened it (dispatched; rework in older logs)
    department: str
    deadline: datetime | None = None  # None after an old rework: only the SLA engine knew it
    parked: bool = False  # parked and resumed without a deadline: only the engine knows it
    handled_at: datetime | None = None
    returned: bool = False
    acknowledged: bool = False
    breached: bool = False  # the SLA engine said the handling deadline passed unmet
    reworked: bool = False  # its handling was sent back (check failed or reopened)
    dispatcher: str | None = None  # the command centre's person who dispatched it by hand

    @property
    def late(self) -> bool:
        if self.breached:
            return True
        if self.deadline is None or self.parked or self.handled_at is None:
            return False
        return self.handled_at > self.deadline

    @property
    def due(self) -> bool:
        """Counted by on-time handling: handled, or its deadline passed unmet."""
        return self.handled_at is not None or self.late

    @property
    def responded(self) -> bool:
        """The department reacted: acknowledged (签收), handled or returned it."""
        return self.acknowledged or self.handled_at is not None or self.returned


class Task(BaseModel):
    """A timed task before or after the department's: a dispatch (the command centre's), a
    verification or an on-site check (a supervisor's)."""

    opened: int  # the case version that opened its clock
    supervisor: str | None = None  # who did it, else who answers for it (not for dispatch)
    due: datetime | None = None  # its deadline when an event says it (verification_due)
    done_at: datetime | None = None
    withdrawn: bool = False  # settled by someone else (a verification the centre decided)
    breached: bool = False  # the SLA engine said its deadline passed unmet
    by: str | None = None  # the centre's person who did it (a filing: the operator)

    @property
    def late(self) -> bool:
        if self.breached:
            return True
        return self.due is not None and self.done_at is not None and self.done_at > self.due

    @property
    def judged(self) -> bool:
        """Counted by its on-time indicator: done, or late (a withdrawn task only if late)."""
        return self.late or (self.done_at is not None and not self.withdrawn)


class UrgeFact(BaseModel):
    """A 督办 of one department and its reply."""

    urge_id: str
    department: str
    reply_by: datetime
    replied_at: datetime | None = None

    def late(self, seen_until: datetime | None) -> bool:
        if self.replied_at is not None:
            return self.replied_at > self.reply_by
        return seen_until is not None and seen_until > self.reply_by

    def judged(self, seen_until: datetime | None) -> bool:
        """Counted: replied, or known late."""
        return self.replied_at is not None or self.late(seen_until)


class CallbackFact(BaseModel):
    """回访: the resident's answers to the hotline's callback after the closure at
    `closure` (a case version), about the department that held it then."""

    closure: int
    department: str | None = None
    contacted: bool
    solved: bool
    satisfaction: str  # satisfied | basically_satisfied | dissatisfied


class ApprovalFact(BaseModel):
    """A request the shift lead decides (a department's extension, parking, return or
    resumption; an operator's void) and the decision."""

    request_id: str
    requested_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None  # the shift lead (the person, else the actor's id)

    def on_time(self, within: timedelta) -> bool:
        return self.decided_at is not None and self.decided_at - self.requested_at <= within


class CaseFacts(BaseModel):
    """What evaluation needs to know about one case."""

    case_id: str
    version: int = 0  # the newest lifecycle version folded
    state: State | None = None
    channel: str | None = None
    supervisor: str | None = None  # the supervisor who reported it (supervisor channel)
    verifier: str | None = None  # the supervisor its verification was given to (citizens')
    kind: str | None = None
    class_code: str | None = None
    grid_code: str | None = None
    reported_at: datetime | None = None
    filed: bool = False
    voided: bool = False
    rounds: list[Round] = Field(default_factory=list)
    dispatches: list[Task] = Field(default_factory=list)  # the command centre's
    verification: Task | None = None  # a citizen report's (核实)
    checks: list[Task] = Field(default_factory=list)  # on-site checks (核查), one a handling
    failed_checks: int = 0
    reworks: int = 0  # rework events: check failed or reopened
    reopened: int = 0  # reworks after the resident's feedback (evaluated → rework)
    closed_at: datetime | None = None  # the last closure
    rating: int | None = None  # the latest rating, 1–5
    urges: list[UrgeFact] = Field(default_factory=list)  # 督办, in the order urged
    seen_until: datetime | None = None  # the time of the latest event read of the case
    # 回访: the latest answered callback (of the latest closure that had one), and how many
    # callbacks were invalid (nobody reached after the city's tries): not counted.
    callback: CallbackFact | None = None
    invalid_callbacks: int = 0
    answered: bool = False  # a consultation answered directly (直接答复), never filed
    knowledge_id: str | None = None  # the knowledge base's entry it was answered with
    filing: Task | None = None  # the operator's filing decision, on the `file` stage's clock
    approvals: list[ApprovalFact] = Field(default_factory=list)  # requests, in order asked
    # A dispute (矛盾纠纷): the tiers that held it, in order, and the tier that closed it
    # (with the parties' confirmation or not).
    dispute_tiers: list[str] = Field(default_factory=list)
    dispute_closed_by: str | None = None
    dispute_confirmed: bool = False
    # The grid tier's part (按时调解率): the version that gave it to the grid (its `mediate`
    # clock's opening), when the grid let it go (closed or passed up), whether it was late.
    dispute_grid_opened: int | None = None
    dispute_grid_done_at: datetime | None = None
    dispute_grid_late: bool = False
    self_handled: bool = False  # 自处置: fixed on the spot by who reported it, never filed

    @property
    def street(self) -> str | None:
        return self.grid_code[6:9] if self.grid_code else None

    @property
    def district(self) -> str | None:
        return self.grid_code[:6] if self.grid_code else None

    @property
    def community(self) -> str | None:
        return self.grid_code[6:12] if self.grid_code else None

    @property
    def departments(self) -> list[str]:
        """Every department it was dispatched to, in order, once each."""
        return list(dict.fromkeys(r.department for r in self.rounds))

    @property
    def owner(self) -> str | None:
        """The department that answers for it: the one it was last dispatched to."""
        return self.rounds[-1].department if self.rounds else None

    @property
    def closed(self) -> bool:
        return self.state in CLOSED_STATES

    @property
    def handled_at(self) -> datetime | None:
        times = [r.handled_at for r in self.rounds if r.handled_at is not None]
        return max(times) if times else None

    @property
    def check_late(self) -> bool:
        """An on-site check (核查) was late."""
        return any(c.late for c in self.checks)

    @property
    def operators(self) -> list[str]:
        """The supervision-centre operator who filed or voided it, when a person did."""
        filing = self.filing
        return [filing.by] if filing is not None and filing.by and filing.done_at else []

    @property
    def dispatchers(self) -> list[str]:
        """The command centre's people who dispatched it by hand, once each."""
        return list(dict.fromkeys(r.dispatcher for r in self.rounds if r.dispatcher))

    @property
    def shift_leads(self) -> list[str]:
        """The shift leads who decided a request of it, once each."""
        return list(dict.fromkeys(a.decided_by for a in self.approvals if a.decided_by))

    @property
    def public(self) -> bool:
        """First reported by the public (hotline, website), not found on patrol."""
        return self.channel is not None and self.channel != Channel.supervisor.value

    @property
    def grid_supervisor(self) -> str | None:
        """The supervisor of its grid as the log records it (漏报率 counts the case for
        them): who was given a citizen report to verify (the grid's supervisor then), or the
        supervisor who found it on patrol."""
        return self.verifier if self.public else self.supervisor

    @property
    def supervisors(self) -> list[str]:
        """The supervisors it counts for, once each: who reported it, who verified it (or
        was given that), who checked it (or answers for an unchecked handling)."""
        tasks = [self.verification, *self.checks]
        found = [self.supervisor, *(t.supervisor for t in tasks if t and _counts(t))]
        return list(dict.fromkeys(s for s in found if s))


def _counts(task: Task) -> bool:
    """Whether a task is its supervisor's to answer for: not withdrawn in time."""
    return not task.withdrawn or task.late


def _order(env: Envelope) -> tuple[int, int, datetime, str]:
    """Lifecycle events by version; an annotation after the version it annotates."""
    data = env.data
    if isinstance(data, CaseEvent):
        return (data.version, 0, env.time, env.id)
    return (int(getattr(data, "case_version", 0)), 1, env.time, env.id)


def fold(case_id: str, events: Iterable[Envelope]) -> CaseFacts:
    """The facts of `case_id` from every event of it read so far (any order, duplicates
    allowed: an event id counts once)."""
    unique = {env.id: env for env in events if env.data.case_id == case_id}
    ordered = sorted(unique.values(), key=_order)
    facts = CaseFacts(case_id=case_id)
    facts.seen_until = max((env.time for env in ordered), default=None)
    for env in ordered:
        if isinstance(env.data, CaseEvent):
            _lifecycle(facts, env)
    for env in ordered:
        if not isinstance(env.data, CaseEvent):
            _annotation(facts, env)
    facts.approvals = _approvals(ordered)
    return facts


def _lifecycle(facts: CaseFacts, env: Envelope) -> None:
    data = env.data
    assert isinstance(data, CaseEvent)
    name = transition_name(data.ce_type)
    before = facts.state
    facts.version = data.version
    facts.state = TRANSITIONS[name][1] if name in TRANSITIONS else facts.state
    _tasks(facts, env, name)
    current = facts.rounds[-1] if facts.rounds else None
    if isinstance(data, CaseReported):
        facts.channel = data.channel.value
        facts.supervisor = _supervisor(data)
        facts.verifier = data.verifier
        facts.kind, facts.class_code, facts.grid_code = data.kind, data.class_code, data.grid_code
        facts.reported_at = facts.reported_at or env.time
    elif isinstance(data, CaseFiled):
        # Filing may correct the class and grid the report gave.
        facts.filed = True
        facts.kind, facts.class_code, facts.grid_code = data.kind, data.class_code, data.grid_code
    elif name == "voided":
        facts.voided = True
    elif isinstance(data, CaseDispatched):
        # A dispatcher's by hand (basis `manual`); the routing rule's is nobody's.
        by = _person(data.actor) if data.basis == "manual" else None
        facts.rounds.append(
            Round(
                opened=data.version,
                department=data.department,
                deadline=data.deadline,
                dispatcher=by,
            )
        )
    elif isinstance(data, CaseAnswered):
        facts.answered, facts.knowledge_id = True, data.knowledge_id
    elif isinstance(data, CaseSelfHandled):
        facts.self_handled = True
    elif isinstance(data, CaseReturned) and current is not None:
        current.returned = True
    elif isinstance(data, CaseExtended) and current is not None:
        current.deadline = data.deadline
    elif name == "parked" and current is not None:
        current.parked = True
    elif isinstance(data, CaseResumed) and current is not None and data.deadline is not None:
        current.deadline, current.parked = data.deadline, False  # moved by the parking
    elif name == "handled" and current is not None:
        current.handled_at = env.time
    elif isinstance(data, CaseChecked) and not data.passed:
        facts.failed_checks += 1
    elif name == "closed":
        facts.closed_at = env.time
    elif name == "rework":
        _rework(facts, reopened=before is State.evaluated)
    elif isinstance(data, FeedbackGiven):
        facts.rating = data.rating
    _dispute(facts, data, env.time)


def _dispute(facts: CaseFacts, data: CaseEvent, at: datetime) -> None:
    """Which tiers held a dispute, which closed it, and when the grid let it go."""
    at_grid = facts.dispute_tiers == ["grid"] and facts.dispute_grid_done_at is None
    if isinstance(data, CaseReported) and data.kind == "dispute":
        facts.dispute_tiers, facts.dispute_grid_opened = ["grid"], data.version
    elif isinstance(data, DisputeEscalated):
        facts.dispute_tiers.append(data.tier)
    elif isinstance(data, DisputeClosed):
        facts.dispute_closed_by, facts.dispute_confirmed = data.tier, data.confirmed
    if at_grid and isinstance(data, DisputeEscalated | DisputeClosed):
        facts.dispute_grid_done_at = at


def _tasks(facts: CaseFacts, env: Envelope, name: str) -> None:
    """Open and settle the tasks of the centres and supervisors (see the module's doc)."""
    data = env.data
    assert isinstance(data, CaseEvent)
    by = data.actor.id if data.actor.role is Role.supervisor else None
    pending = facts.verification
    if pending is not None and pending.done_at is None and name != "reported":
        # The first step out of `reported` settles the verification: a supervisor's
        # (confirmed or refuted) is theirs, anyone else's (filed, voided or merged by the
        # centre or by rule) withdraws it.
        pending.done_at, pending.withdrawn = env.time, by is None
        pending.supervisor = by or pending.supervisor
    citizens = isinstance(data, CaseReported) and data.channel is not Channel.supervisor
    if citizens and isinstance(data, CaseReported) and data.kind != "dispute":
        facts.verification = Task(
            opened=data.version, supervisor=data.verifier, due=data.verification_due
        )
    _filing(facts, env, name)
    if name in ("filed", "returned", "rework"):
        facts.dispatches.append(Task(opened=data.version))
    elif name == "dispatched" and facts.dispatches and facts.dispatches[-1].done_at is None:
        facts.dispatches[-1].done_at = env.time
    elif name == "handled":
        facts.checks.append(
            Task(opened=data.version, supervisor=facts.supervisor or facts.verifier)
        )
    elif isinstance(data, CaseChecked) and facts.checks and facts.checks[-1].done_at is None:
        facts.checks[-1].done_at = env.time
        facts.checks[-1].supervisor = by or facts.checks[-1].supervisor


def _filing(facts: CaseFacts, env: Envelope, name: str) -> None:
    """The operator's filing decision (立案 or 作废) runs on the SLA engine's `file` clock,
    opened by a supervisor's report or a confirmed verification; it is the operator's who
    filed or voided it, and withdrawn when the rule filed it or it was merged or answered."""
    data = env.data
    assert isinstance(data, CaseEvent)
    pending = facts.filing
    if pending is not None and pending.done_at is None and name != "reported":
        decider = data.actor.role is Role.supervision_centre and name in ("filed", "voided")
        pending.done_at, pending.withdrawn = env.time, not decider
        pending.by = _person(data.actor) if decider else None
    supervisors = isinstance(data, CaseReported) and data.channel is Channel.supervisor
    if supervisors or name == "verified":
        facts.filing = Task(opened=data.version)


def _person(actor: Actor) -> str:
    """Who acted, as staff are scored: the person signed in, else the credential's id."""
    return actor.person or actor.id


def _approvals(ordered: list[Envelope]) -> list[ApprovalFact]:
    """Requests awaiting the shift lead (a department's; an operator's void) and the
    decisions on them, matched by request id."""
    found: dict[str, ApprovalFact] = {}
    for env in ordered:
        data = env.data
        if isinstance(data, _REQUESTS):
            found.setdefault(
                data.request_id, ApprovalFact(request_id=data.request_id, requested_at=env.time)
            )
    for env in ordered:
        data = env.data
        request_id = getattr(data, "request_id", None)
        decision = isinstance(data, _DECISIONS)
        actor: Actor | None = getattr(data, "actor", None)
        if not decision or request_id not in found or actor is None:
            continue
        approval = found[request_id]
        if approval.decided_at is None:
            approval.decided_at = env.time
            approval.decided_by = _person(actor) if actor.role is Role.shift_lead else None
    return list(found.values())


def _supervisor(data: CaseReported) -> str | None:
    """Who found it on patrol: the supervisor who sent it, or, when the centre entered it
    for one, the reporter it names."""
    if data.channel is not Channel.supervisor or data.actor.role is Role.grid_staff:
        return None  # a grid manager's report (自处置) is the grid's, not a supervisor's
    return data.actor.id if data.actor.role is Role.supervisor else data.reporter.id


def _rework(facts: CaseFacts, reopened: bool) -> None:
    facts.reworks += 1
    facts.reopened += 1 if reopened else 0
    if facts.rounds:
        # Back to the command centre, which dispatches it again (a new round from then).
        facts.rounds[-1].reworked = True


def _annotation(facts: CaseFacts, env: Envelope) -> None:
    data = env.data
    if isinstance(data, SlaBreach):
        _breach(facts, data)
    elif isinstance(data, CaseAcknowledged):
        # The round of that department current at the acknowledged version.
        rounds = [
            r
            for r in facts.rounds
            if r.department == data.department and r.opened <= data.case_version
        ]
        if rounds:
            rounds[-1].acknowledged = True
    elif isinstance(data, CaseUrged):
        facts.urges.append(
            UrgeFact(urge_id=data.urge_id, department=data.department, reply_by=data.reply_by)
        )
    elif isinstance(data, UrgeReplied):
        for urge in facts.urges:
            if urge.urge_id == data.urge_id and urge.replied_at is None:
                urge.replied_at = env.time
    elif isinstance(data, CallbackAnswered):
        # Annotations come by case version: the latest closure's answer stands.
        held = [r.department for r in facts.rounds if r.opened <= data.case_version]
        facts.callback = CallbackFact(
            closure=data.case_version,
            department=held[-1] if held else None,
            contacted=data.contacted,
            solved=data.solved,
            satisfaction=data.satisfaction,
        )
    elif isinstance(data, CallbackUnreached) and data.invalid:
        facts.invalid_callbacks += 1


def _breach(facts: CaseFacts, data: SlaBreach) -> None:
    """The SLA engine's breach of the clock opened at `case_version`; a breach read after
    the work it raced with (done before its deadline) does not make it late."""
    tasks: dict[Stage, list[Task]] = {
        Stage.file: [facts.filing] if facts.filing else [],
        Stage.dispatch: facts.dispatches,
        Stage.verify: [facts.verification] if facts.verification else [],
        Stage.check: facts.checks,
    }
    if data.stage is Stage.mediate:
        # The grid tier's clock (opened by the report): late unless it let go in time.
        done = facts.dispute_grid_done_at
        if data.case_version == facts.dispute_grid_opened and not (done and done <= data.deadline):
            facts.dispute_grid_late = True
        return
    if data.stage is Stage.handle:
        found = next((r for r in facts.rounds if r.opened == data.case_version), None)
        if found is not None and not (found.handled_at and found.handled_at <= data.deadline):
            found.breached = True
        return
    task = next((t for t in tasks.get(data.stage, []) if t.opened == data.case_version), None)
    if task is not None and not (task.done_at and task.done_at <= data.deadline):
        task.breached = True
