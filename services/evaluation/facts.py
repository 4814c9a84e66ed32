"""A case's evaluation facts (评价要素), folded from its events. Pure: no I/O, no wall clock.

One case's events reach evaluation through several topics whose relative order is not
guaranteed, so facts are never accumulated in arrival order: every time an event arrives,
the case's whole set of events is folded again, lifecycle events by case version, then the
annotations (SLA breaches, acknowledgements) matched to what they annotate. The same set
gives the same facts whatever the order it came in.

A handling round (处置轮次) is one stretch of the handling clock: opened by a dispatch (the
deadline the department was told, moved by extensions) or by a rework (the class's limit,
reckoned by the SLA engine). The SLA engine's breach of a round's clock (`SlaBreach`,
stage `handle`, `case_version` = the version that opened the round) says it was late; a
round handled after its known deadline, and never parked (parking moves the deadline by
working time only the engine reckons), is late even when no breach was read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from gridloop.lifecycle import TRANSITIONS, State, transition_name
from schemas.envelope import Envelope
from schemas.events import (
    CaseAcknowledged,
    CaseChecked,
    CaseDispatched,
    CaseEvent,
    CaseExtended,
    CaseFiled,
    CaseReported,
    CaseReturned,
    Channel,
    FeedbackGiven,
    Role,
    SlaBreach,
    Stage,
)

CLOSED_STATES = frozenset({State.closed, State.evaluated})


class Round(BaseModel):
    """One handling round of one department."""

    opened: int  # the case version that opened it (dispatched or rework)
    department: str
    deadline: datetime | None = None  # None after a rework: only the SLA engine knows it
    parked: bool = False
    handled_at: datetime | None = None
    returned: bool = False
    acknowledged: bool = False
    breached: bool = False  # the SLA engine said the handling deadline passed unmet
    reworked: bool = False  # its handling was sent back (check failed or reopened)

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


class CaseFacts(BaseModel):
    """What evaluation needs to know about one case."""

    case_id: str
    version: int = 0  # the newest lifecycle version folded
    state: State | None = None
    channel: str | None = None
    supervisor: str | None = None  # the supervisor who reported it (supervisor channel)
    kind: str | None = None
    class_code: str | None = None
    grid_code: str | None = None
    reported_at: datetime | None = None
    filed: bool = False
    voided: bool = False
    rounds: list[Round] = Field(default_factory=list)
    failed_checks: int = 0
    check_late: bool = False  # the SLA engine said the check (核查) was late
    reworks: int = 0  # rework events: check failed or reopened
    reopened: int = 0  # reworks after the resident's feedback (evaluated → rework)
    closed_at: datetime | None = None  # the last closure
    rating: int | None = None  # the latest rating, 1–5

    @property
    def street(self) -> str | None:
        return self.grid_code[6:9] if self.grid_code else None

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
    for env in ordered:
        if isinstance(env.data, CaseEvent):
            _lifecycle(facts, env)
    for env in ordered:
        if not isinstance(env.data, CaseEvent):
            _annotation(facts, env)
    return facts


def _lifecycle(facts: CaseFacts, env: Envelope) -> None:
    data = env.data
    assert isinstance(data, CaseEvent)
    name = transition_name(data.ce_type)
    before = facts.state
    facts.version = data.version
    facts.state = TRANSITIONS[name][1] if name in TRANSITIONS else facts.state
    current = facts.rounds[-1] if facts.rounds else None
    if isinstance(data, CaseReported):
        facts.channel = data.channel.value
        facts.supervisor = _supervisor(data)
        facts.kind, facts.class_code, facts.grid_code = data.kind, data.class_code, data.grid_code
        facts.reported_at = facts.reported_at or env.time
    elif isinstance(data, CaseFiled):
        # Filing may correct the class and grid the report gave.
        facts.filed = True
        facts.kind, facts.class_code, facts.grid_code = data.kind, data.class_code, data.grid_code
    elif name == "voided":
        facts.voided = True
    elif isinstance(data, CaseDispatched):
        facts.rounds.append(
            Round(opened=data.version, department=data.department, deadline=data.deadline)
        )
    elif isinstance(data, CaseReturned) and current is not None:
        current.returned = True
    elif isinstance(data, CaseExtended) and current is not None:
        current.deadline = data.deadline
    elif name == "parked" and current is not None:
        current.parked = True
    elif name == "handled" and current is not None:
        current.handled_at = env.time
    elif isinstance(data, CaseChecked) and not data.passed:
        facts.failed_checks += 1
    elif name == "closed":
        facts.closed_at = env.time
    elif name == "rework":
        _rework(facts, data.version, reopened=before is State.evaluated)
    elif isinstance(data, FeedbackGiven):
        facts.rating = data.rating


def _supervisor(data: CaseReported) -> str | None:
    """Who found it on patrol: the supervisor who sent it, or, when the centre entered it
    for one, the reporter it names."""
    if data.channel is not Channel.supervisor:
        return None
    return data.actor.id if data.actor.role is Role.supervisor else data.reporter.id


def _rework(facts: CaseFacts, version: int, reopened: bool) -> None:
    facts.reworks += 1
    facts.reopened += 1 if reopened else 0
    if facts.rounds:
        facts.rounds[-1].reworked = True
        # The SLA engine restarts the handling clock for the same department.
        facts.rounds.append(Round(opened=version, department=facts.rounds[-1].department))


def _annotation(facts: CaseFacts, env: Envelope) -> None:
    data = env.data
    if isinstance(data, SlaBreach):
        if data.stage is Stage.check:
            facts.check_late = True
        elif data.stage is Stage.handle:
            found = next((r for r in facts.rounds if r.opened == data.case_version), None)
            # A breach read after the handling it raced with does not make it late.
            if found is not None and not (found.handled_at and found.handled_at <= data.deadline):
                found.breached = True
    elif isinstance(data, CaseAcknowledged):
        # The round of that department current at the acknowledged version.
        rounds = [
            r
            for r in facts.rounds
            if r.department == data.department and r.opened <= data.case_version
        ]
        if rounds:
            rounds[-1].acknowledged = True
