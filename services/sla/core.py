"""The SLA engine's decisions. Pure: the case's clocks, an event and the city's policy in;
the new clocks and the SLA events due out. No I/O, no reading of the wall clock.

Every stage of the closed loop has a clock (时限) with a limit from the city pack:

    verify    reported (citizen channels) ─▶ verified / filed / voided / merged / answered
    file      verified, or reported by a supervisor ─▶ filed / voided / merged / self_handled
    dispatch  filed, returned (回退) or rework (返工): the command centre (re-)dispatches
              ─▶ dispatched
    handle    dispatched (the deadline the department was told, counted from the dispatch)
              ─▶ handled / returned;  parked (挂账) pauses it, resumed restarts it (to the
              deadline the resumption carries), extended (延期) moves its deadline
    check     handled ─▶ checked / rework
    explain   a handling breach ─▶ the department's explanation (`case.explained`); an
              overdue case left unexplained becomes overdue itself (Zhoushan's rule)
    mediate   a dispute (kind `dispute`) held by a tier office: reported (its grid) or
              dispute_escalated (the next tier, due at the deadline it carries) ─▶ the next
              escalation or dispute_closed; on the ladder's limit for the tier. Its breach
              is dispatch's cue to take the dispute up one tier (docs/disputes.md)

Traffic light: green while at most `warning_at` (80 %) of the limit is used, yellow (a
warning) past it, red (a breach) past 100 %. A handling breach climbs the ladder
community → street → district → city, each rung after its grace period.

Each warning, breach and escalation is emitted once per case, stage and clock: its id is
derived from the version that opened the clock (`SlaEvent.identity`), and the engine marks
it on the clock once Kafka has acknowledged it (`record`), so a repeat after a crash has the
same id and is dropped by every consumer.

Events of one case reach the engine through several topics whose relative order is not
guaranteed: a lifecycle event older than the newest applied changes no clock (its facts,
like the class and grid of a report, are still kept).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from gridloop.calendar import ZERO, Clock
from gridloop.citypack.sla import TIERS, SlaPolicy
from schemas.events import (
    CaseDispatched,
    CaseEvent,
    CaseExplained,
    CaseExtended,
    CaseFiled,
    CaseHandled,
    CaseReported,
    CaseResumed,
    CaseReturned,
    DisputeEscalated,
    DisputeTier,
    EventData,
    SlaBreach,
    SlaEscalation,
    SlaEvent,
    SlaWarning,
    Stage,
)

Light = Literal["green", "yellow", "red"]
SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class StageClock:
    """The clock of one stage of one case, opened by case version `opened`."""

    stage: Stage
    opened: int
    department: str
    limit: timedelta  # clock time allowed (working or natural)
    used: timedelta = ZERO  # clock time used before `since`
    since: datetime | None = None  # start of the running segment; None while parked
    due: datetime | None = None  # red after this instant (while running)
    warn: datetime | None = None  # yellow after this instant (while running)
    warned: bool = False
    breached: bool = False
    tiers: int = 0  # rungs of the ladder escalated
    assumed: tuple[int, ...] = ()  # years reckoned on weekends alone

    @property
    def running(self) -> bool:
        return self.since is not None

    @property
    def light(self) -> Light:
        return "red" if self.breached else "yellow" if self.warned else "green"

    def to_json(self) -> dict[str, Any]:
        return {
            "s": self.stage.value,
            "o": self.opened,
            "d": self.department,
            "l": _us(self.limit),
            "u": _us(self.used),
            "t": _iso(self.since),
            "due": _iso(self.due),
            "w": _iso(self.warn),
            "m": (1 if self.warned else 0) | (2 if self.breached else 0),
            "e": self.tiers,
            "y": list(self.assumed),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StageClock:
        return cls(
            Stage(raw["s"]),
            raw["o"],
            raw["d"],
            timedelta(microseconds=raw["l"]),
            timedelta(microseconds=raw["u"]),
            _dt(raw["t"]),
            _dt(raw["due"]),
            _dt(raw["w"]),
            bool(raw["m"] & 1),
            bool(raw["m"] & 2),
            raw["e"],
            tuple(raw["y"]),
        )


@dataclass(frozen=True)
class CaseClocks:
    """Everything the engine keeps about one case: its facts and its open clocks."""

    version: int = 0  # the newest lifecycle version applied
    kind: str | None = None
    class_code: str | None = None
    urgency: str | None = None
    grid_code: str | None = None
    channel: str | None = None
    department: str | None = None  # the department it was last dispatched to
    reported_at: datetime | None = None
    explained: int = 0  # the newest case version the department explained
    clocks: tuple[StageClock, ...] = field(default_factory=tuple)

    def clock(self, stage: Stage) -> StageClock | None:
        return next((c for c in self.clocks if c.stage is stage), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": self.version,
            "k": self.kind,
            "c": self.class_code,
            "u": self.urgency,
            "g": self.grid_code,
            "ch": self.channel,
            "d": self.department,
            "r": _iso(self.reported_at),
            "x": self.explained,
            "clocks": [c.to_json() for c in self.clocks],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CaseClocks:
        return cls(
            raw["v"],
            raw["k"],
            raw["c"],
            raw["u"],
            raw["g"],
            raw["ch"],
            raw["d"],
            _dt(raw["r"]),
            raw["x"],
            tuple(StageClock.from_json(c) for c in raw["clocks"]),
        )


@dataclass(frozen=True)
class Closed:
    """A clock that stopped for good, with the clock time it used: for the metrics."""

    clock: StageClock
    used: timedelta


@dataclass(frozen=True)
class Change:
    state: CaseClocks
    closed: tuple[Closed, ...] = ()
    closed_case: timedelta | None = None  # reported → closed, natural time


def _us(d: timedelta) -> int:
    return d // timedelta(microseconds=1)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _dt(raw: str | None) -> datetime | None:
    return datetime.fromisoformat(raw) if raw else None


# --- opening, pausing and closing clocks -------------------------------------------------------


def _clock_of(state: CaseClocks, policy: SlaPolicy) -> Clock:
    return policy.clock(
        policy.terms(state.kind, state.class_code, state.urgency, state.channel).clock_kind
    )


def _start(
    clock: StageClock, at: datetime, measure: Clock, warning_at: float, due: datetime | None = None
) -> StageClock:
    """Run `clock` from `at`: when it turns yellow and red (`due` when the deadline is
    given, else what is left of the limit from `at`)."""
    left = clock.limit - clock.used
    if due is None:
        due = measure.add(at, left)
    warn = measure.add(at, max(clock.limit * warning_at - clock.used, ZERO))
    assumed = tuple(sorted(set(clock.assumed) | measure.assumed_years(at, due)))
    return replace(clock, since=at, due=due, warn=min(warn, due), assumed=assumed)


def _open(
    state: CaseClocks,
    stage: Stage,
    at: datetime,
    policy: SlaPolicy,
    department: str,
    deadline: datetime | None = None,
) -> StageClock | None:
    """A clock for `stage` from `at`: due at the `deadline` the department was told (dispatch
    reckons it with `SlaPolicy.deadline` too, or the command centre gives it), the time it
    leaves being the limit; else due when the policy's limit for the stage is used."""
    measure = _clock_of(state, policy)
    if deadline is not None:
        limit = measure.between(at, deadline)
    else:
        reckoned = policy.deadline(
            stage, state.kind, state.class_code, state.urgency, at, state.channel
        )
        if reckoned is None:
            return None  # the pack sets no limit for this stage: not timed
        limit, deadline = reckoned.limit, reckoned.due
    clock = StageClock(stage, state.version, department, limit)
    return _start(clock, at, measure, policy.warning_at, deadline)


def _open_mediation(
    state: CaseClocks,
    tier: DisputeTier,
    office: str,
    at: datetime,
    policy: SlaPolicy,
    deadline: datetime | None = None,
) -> StageClock | None:
    """The clock of the tier that holds a dispute from `at` (its office is the clock's
    `department`): the ladder's limit for the tier, due at `deadline` when the escalation
    carried it (dispatch reckoned it with the same ladder)."""
    ladder = policy.disputes
    limit = ladder.limit(tier) if ladder is not None else None
    if ladder is None or limit is None:
        return None  # the pack does not time this tier
    if deadline is None:
        deadline, _ = ladder.deadline(tier, at)
    clock = StageClock(Stage.mediate, state.version, office, limit)
    return _start(clock, at, ladder.measure, policy.warning_at, deadline)


def _used(clock: StageClock, at: datetime, measure: Clock) -> timedelta:
    if clock.since is None:
        return clock.used
    return clock.used + measure.between(clock.since, at)


def _closing(
    clocks: tuple[StageClock, ...], stages: set[Stage], at: datetime, measure: Clock
) -> tuple[tuple[StageClock, ...], tuple[Closed, ...]]:
    kept = tuple(c for c in clocks if c.stage not in stages)
    closed = tuple(Closed(c, _used(c, at, measure)) for c in clocks if c.stage in stages)
    return kept, closed


# --- events in ----------------------------------------------------------------------------------


def _facts(state: CaseClocks, data: EventData, at: datetime) -> CaseClocks:
    """Facts that never change once known, kept whatever the arrival order."""
    if isinstance(data, CaseReported):
        state = replace(
            state,
            kind=data.kind,
            class_code=data.class_code,
            grid_code=data.grid_code,
            channel=data.channel.value,
            reported_at=state.reported_at or at,
        )
    elif isinstance(data, CaseFiled):
        state = replace(state, kind=data.kind, class_code=data.class_code, grid_code=data.grid_code)
    urgency = getattr(data, "urgency", None)  # set by intake when it grades urgency
    if isinstance(urgency, str) and urgency != state.urgency:
        state = replace(state, urgency=urgency)
    return state


# A transition ends every stage clock of the states it leaves: only the stage it starts runs
# after it (so a gap in what was read, say a `dispatched` read after its `handled`, leaves no
# clock open). Extensions, parking and resumption act on the handling clock instead. The
# explanation clock is not a lifecycle stage: only an explanation ends it.
_LIFECYCLE = frozenset(
    f"gridloop.case.{t}"
    for t in (
        "reported",
        "verified",
        "filed",
        "voided",
        "merged",
        "answered",
        "self_handled",
        "dispatched",
        "returned",
        "handled",
        "checked",
        "rework",
        "closed",
        "feedback",
        "dispute_escalated",
        "dispute_closed",
    )
)
_STAGES = frozenset(Stage) - {Stage.explain}


def apply(
    current: CaseClocks | None, data: EventData, at: datetime, policy: SlaPolicy
) -> Change | None:
    """The clocks after `data`, which happened `at` (its CloudEvent time); None when
    nothing changes (a late or repeated event, or one the engine does not time)."""
    before = current or CaseClocks()
    state = _facts(before, data, at)
    if isinstance(data, CaseExplained):
        return _explained(state, data) if data.case_version > state.explained else None
    if not isinstance(data, CaseEvent) or data.version <= state.version:
        return Change(state) if state != before else None
    measure = _clock_of(state, policy)
    ending = _STAGES if data.ce_type in _LIFECYCLE else frozenset()
    clocks, closed = _closing(state.clocks, set(ending), at, measure)
    state = replace(state, version=data.version, clocks=clocks)
    opened: list[StageClock | None] = []
    supervision = policy.centre(Stage.file)
    kind = data.ce_type.rsplit(".", 1)[-1]
    if isinstance(data, CaseReported) and data.kind == "dispute":
        opened.append(_open_mediation(state, "grid", data.grid_code, at, policy))
    elif isinstance(data, DisputeEscalated):
        opened.append(_open_mediation(state, data.tier, data.office, at, policy, data.deadline))
    elif kind == "reported":
        if isinstance(data, CaseReported) and data.channel.value != SUPERVISOR:
            opened.append(_open(state, Stage.verify, at, policy, supervision))
        else:
            opened.append(_open(state, Stage.file, at, policy, supervision))
    elif kind == "verified":
        opened.append(_open(state, Stage.file, at, policy, supervision))
    elif kind == "filed":
        opened.append(_open(state, Stage.dispatch, at, policy, policy.centre(Stage.dispatch)))
    elif isinstance(data, CaseDispatched):
        state = replace(state, department=data.department)
        opened.append(_open(state, Stage.handle, at, policy, data.department, data.deadline))
    elif isinstance(data, CaseReturned) or kind == "rework":
        # Back to the command centre, which dispatches again (a rework to the department
        # that handled it): the department's time starts with that dispatch, not before.
        opened.append(_open(state, Stage.dispatch, at, policy, policy.centre(Stage.dispatch)))
    elif isinstance(data, CaseExtended):
        state = _extend(state, data.deadline, at, measure, policy.warning_at)
    elif kind == "parked":
        state = _pause(state, at, measure)
    elif isinstance(data, CaseResumed):
        state = _resume(state, at, measure, policy.warning_at, data.deadline)
    elif isinstance(data, CaseHandled):
        opened.append(_open(state, Stage.check, at, policy, supervision))
    state = replace(state, clocks=state.clocks + tuple(c for c in opened if c is not None))
    closed_case = None
    if kind == "closed" and state.reported_at is not None:
        closed_case = max(at - state.reported_at, ZERO)
    return Change(state, closed, closed_case)


def _replace_clock(state: CaseClocks, clock: StageClock) -> CaseClocks:
    return replace(
        state, clocks=tuple(clock if c.stage is clock.stage else c for c in state.clocks)
    )


def _extend(
    state: CaseClocks, deadline: datetime, at: datetime, measure: Clock, warning_at: float
) -> CaseClocks:
    handle = state.clock(Stage.handle)
    if handle is None:
        return state
    used = _used(handle, at, measure)
    limit = max(handle.limit, used + measure.between(at, deadline))  # never shortened
    moved = replace(handle, limit=limit, used=used, since=None, due=None, warn=None)
    if handle.running:
        due = max(deadline, measure.add(at, limit - used))
        moved = _start(moved, at, measure, warning_at, due)
    return _replace_clock(state, moved)


def _pause(state: CaseClocks, at: datetime, measure: Clock) -> CaseClocks:
    handle = state.clock(Stage.handle)
    if handle is None or not handle.running:
        return state
    used = _used(handle, at, measure)
    return _replace_clock(state, replace(handle, used=used, since=None, due=None, warn=None))


def _resume(
    state: CaseClocks,
    at: datetime,
    measure: Clock,
    warning_at: float,
    deadline: datetime | None,
) -> CaseClocks:
    """Run the paused handling clock again: due at the `deadline` the resumption carries
    (dispatch reckoned it with `SlaPolicy.resumed`: the time left when it was parked, the
    same as this clock's), else when the time it has left is used."""
    handle = state.clock(Stage.handle)
    if handle is None or handle.running:
        return state
    return _replace_clock(state, _start(handle, at, measure, warning_at, deadline))


def _explained(state: CaseClocks, data: CaseExplained) -> Change:
    state = replace(state, explained=data.case_version)
    explain = state.clock(Stage.explain)
    if explain is not None and data.case_version >= explain.opened:
        clocks = tuple(c for c in state.clocks if c is not explain)
        return Change(replace(state, clocks=clocks), (Closed(explain, explain.used),))
    return Change(state)


# --- SLA events out, and read back --------------------------------------------------------------


def due_events(case_id: str, state: CaseClocks, now: datetime, policy: SlaPolicy) -> list[SlaEvent]:
    """The warnings, breaches and escalations due at `now` and not yet recorded.

    A breach due at the same time as its warning goes alone (red says yellow too);
    escalations wait until their breach is recorded, so they always come after it."""
    events: list[SlaEvent] = []
    terms = policy.terms(state.kind, state.class_code, state.urgency, state.channel)
    measure = policy.clock(terms.clock_kind)
    for clock in state.clocks:
        if clock.due is None or not clock.running:
            continue
        common = {
            "case_id": case_id,
            "case_version": clock.opened,
            "stage": clock.stage,
            "department": clock.department,
            "deadline": clock.due,
            "assumed_years": list(clock.assumed),
        }
        if not clock.breached and now > clock.due:
            events.append(SlaBreach.model_validate(common))
        elif not clock.warned and not clock.breached and clock.warn and now > clock.warn:
            events.append(SlaWarning.model_validate(common))
        if clock.breached and clock.stage is Stage.handle:
            for n, rung in enumerate(terms.ladder):
                if n < clock.tiers or now <= measure.add(clock.due, rung.after):
                    continue
                events.append(
                    SlaEscalation.model_validate(
                        common
                        | {
                            "tier": rung.tier,
                            "notify_department": policy.office(rung.tier, state.grid_code),
                        }
                    )
                )
    return events


def next_due(state: CaseClocks, policy: SlaPolicy) -> datetime | None:
    """The next instant something of this case falls due, for the due-time index."""
    times = list(_pending(state, policy))
    return min(times) if times else None


def _pending(state: CaseClocks, policy: SlaPolicy) -> Iterator[datetime]:
    terms = policy.terms(state.kind, state.class_code, state.urgency, state.channel)
    measure = policy.clock(terms.clock_kind)
    for clock in state.clocks:
        if clock.due is None or not clock.running:
            continue
        if not clock.breached:
            yield clock.due if clock.warned or clock.warn is None else clock.warn
        elif clock.stage is Stage.handle and clock.tiers < len(terms.ladder):
            yield measure.add(clock.due, terms.ladder[clock.tiers].after)


def record(state: CaseClocks, event: SlaEvent, policy: SlaPolicy) -> CaseClocks | None:
    """Mark an SLA event Kafka acknowledged on its clock; None when it changes nothing (a
    repeat, or a clock that has since closed or restarted)."""
    clock = state.clock(event.stage)
    if clock is None or clock.opened != event.case_version:
        return None
    if isinstance(event, SlaWarning):
        marked = replace(clock, warned=True)
    elif isinstance(event, SlaBreach):
        marked = replace(clock, warned=True, breached=True)
    elif isinstance(event, SlaEscalation):
        rung = next(
            (
                n + 1
                for n, r in enumerate(
                    policy.terms(state.kind, state.class_code, state.urgency, state.channel).ladder
                )
                if r.tier == event.tier
            ),
            TIERS.index(event.tier) + 1,
        )
        marked = replace(clock, tiers=max(clock.tiers, rung))
    else:
        return None
    if marked == clock:
        return None
    state = _replace_clock(state, marked)
    if isinstance(event, SlaBreach) and event.stage is Stage.handle:
        state = _open_explanation(state, marked, policy)
    return state


def _open_explanation(state: CaseClocks, breached: StageClock, policy: SlaPolicy) -> CaseClocks:
    """A handling breach needs its department's explanation, itself on a clock that starts
    at the deadline it missed (deterministic whenever the breach is read back)."""
    if state.explained >= breached.opened or breached.due is None:
        return state
    current = state.clock(Stage.explain)
    if current is not None and current.opened >= breached.opened:
        return state
    terms = policy.terms(state.kind, state.class_code, state.urgency, state.channel)
    if Stage.explain not in terms.limits:
        return state
    clock = StageClock(
        Stage.explain, breached.opened, breached.department, terms.limits[Stage.explain]
    )
    clock = _start(clock, breached.due, policy.clock(terms.clock_kind), policy.warning_at)
    kept = tuple(c for c in state.clocks if c.stage is not Stage.explain)
    return replace(state, clocks=(*kept, clock))


# --- what the engine keeps, marks and measures --------------------------------------------------

# A case that reached one of these is done: its clocks are closed and it leaves the table
# (a tombstone on the changelog), so the table holds open cases only.
FINISHED = frozenset(
    {
        "gridloop.case.closed",
        "gridloop.case.voided",
        "gridloop.case.merged",
        "gridloop.case.answered",
        "gridloop.case.dispute_closed",
        "gridloop.case.self_handled",  # 自处置: no dispatch or handling clock is ever opened
    }
)


def to_text(state: CaseClocks) -> str:
    """A table value: compact JSON text, which a write and a recovery both give back as it
    is, and far smaller in memory than nested dicts."""
    return json.dumps(state.to_json(), separators=(",", ":"))


def from_text(raw: str | None) -> CaseClocks | None:
    return CaseClocks.from_json(json.loads(raw)) if raw else None


def leaves_table(change: Change, data: EventData) -> bool:
    """Whether the case is done with: it finished and no clock of it is left open."""
    return data.ce_type in FINISHED and not change.state.clocks


def marked(state: CaseClocks, events: Sequence[SlaEvent], policy: SlaPolicy) -> CaseClocks:
    """`state` with `events` (sent and acknowledged) marked on their clocks in order;
    `state` itself when none changes anything."""
    after = state
    for event in events:
        after = record(after, event, policy) or after
    return after


@dataclass(frozen=True)
class Measured:
    """A stage done, for the metrics: its clock time, and the share of its limit used
    (None when it had no limit to use)."""

    department: str
    stage: Stage
    used: timedelta
    share: float | None


def measured(change: Change, trigger: EventData) -> list[Measured]:
    """The stages `trigger` finished. A handling clock counts only when the case was
    handled (a return or a closure stops it undone); the explanation clock never (it is not
    a stage of the loop). A self-handling (自处置) finishes none: the filing clock its report
    opened was never the supervision centre's to work."""
    done: list[Measured] = []
    if trigger.ce_type == "gridloop.case.self_handled":
        return done
    for closed in change.closed:
        clock = closed.clock
        if clock.stage is Stage.explain:
            continue
        if clock.stage is Stage.handle and not isinstance(trigger, CaseHandled):
            continue
        share = closed.used / clock.limit if clock.limit > ZERO else None
        done.append(Measured(clock.department, clock.stage, closed.used, share))
    return done
