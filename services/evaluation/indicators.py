"""The indicators of design.md §2 "Evaluation" over one entity's cases in one period. Pure.

Which period a case counts in: the day, ISO week and month of its report (`reported_at`,
the `case.reported` CloudEvent time) in the city's time zone (Asia/Shanghai for the demo).
A case stays in its report's periods for life: when it is closed next month, November's
figures change, not December's, so a period's figures settle as its cases finish.

Which entities a case counts for: its grid, community and street (from the grid code, the
filed one when filing corrected it); the command centre once it was to be dispatched; the
supervisors who reported it, verified it (or were given the verification) and checked it
(or answer for an unchecked handling), each judged on that work alone; and every
department it was dispatched to, each on its own rounds for on-time handling, rework and
response, the owner (the last one dispatched) for the rest.

Each indicator judges each case: not counted (None), counted in the denominator only
(False), or in the numerator too (True). Cases still open are counted only once judgeable:

    filing_rate        filed and not voided / reported and decided (filed or voided); merged
                       duplicates and reports still awaiting a decision are not counted
    dispatch_accuracy  never returned (回退) / dispatched
    on_time_dispatch   no late dispatch / a dispatch done or past its deadline (the SLA
                       engine's dispatch breach)
    on_time_handling   no late round / a round handled or past its deadline unmet (an open
                       case before its deadline is not yet due); late = the SLA engine's
                       handling breach, or handled after the known deadline (see facts.py)
    closure            closed (closed or evaluated, not reopened) / filed and not voided
    on_time_closure    closed and never late (a late round or check; a department: its own
                       rounds) / closed, or open and already late
    rework             reworked (check failed or reopened) / handled
    supervisor_share   reported by a supervisor / filed and not voided
    response           a department acknowledged, handled or returned it / dispatched
    resolution         closed and never reopened by a resident / ever closed
    satisfaction       latest rating at or above `satisfied` (4 of 5) / rated
    on_time_verification  verified (or refuted) in time / a verification done or late
    on_time_check      every on-site check in time / a check done or late
    urge_replies       every 督办 of it answered by its reply deadline / a case with an
                       urge answered or known late (a department: the urges of itself)
    callback_response      the unit contacted the resident (响应率) / a valid callback
    callback_resolution    the resident says it is solved (解决率) / a valid callback
    callback_satisfaction  satisfied or basically satisfied (满意率) / a valid callback
                       (the hotline's three rates: the case's latest answered callback
                       (回访); an invalid one, nobody reached, is not counted; a
                       department: the callbacks about its own handling)
    answered_directly  answered directly from the knowledge base (直接答复) / a resident's
                       report (hotline, website) decided at intake: answered, filed or
                       voided (counted apart: no default weight; never filed or dispatched,
                       so in no other figure)
    disputes_solved_here  a dispute closed by this place's tier (矛盾纠纷本级化解率:
                       grid, community, street, district) / a closed dispute that reached
                       its tier (counted apart: no default weight; docs/disputes.md)
    missed_reports     漏报率: first reported by the public (hotline, website) / filed and
                       not voided (lower is better); a supervisor: the cases of their grid
                       (the citizen reports given them to verify, and their own reports)
    self_handled       自处置率: fixed on the spot by the supervisor or grid manager who
                       reported it / a report of the supervisor channel fixed, filed or
                       voided (counted apart: no default weight; never filed or dispatched,
                       so in no other figure); a supervisor: its own reports

The centre's own staff, each person on their own decisions (the person signed in, else the
actor's id; a rule's or the system's decision is no one's):

    on_time_filing     (operator) filed or voided before the SLA engine's breach of the
                       `file` clock / filed or voided by them (a filing that clock did not
                       time, a citizen report decided before it was verified, is not judged)
    dispatch_accuracy  (dispatcher) none of their dispatches returned (回退, as accepted:
                       a denied return request is no return) / dispatched by them by hand
    on_time_approval   (shift lead) every request they decided (extension, parking, return,
                       resumption, void), decided within the pack's
                       `staff.approve_within` of the request / a case with one they decided

Rework and 漏报率 are the indicators where lower is better; the composite uses 1 − rate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gridloop.citypack.sla import Centres
from gridloop.scoring import APPLIES, Indicator, Level, PeriodKind, Ratio
from schemas.events import Channel
from services.evaluation.facts import CallbackFact, CaseFacts, Round, Task

Ind = Indicator
Verdict = bool | None
SATISFIED = 4
# 满意率 as Beijing's 12345 counts it: 满意 and 基本满意 both count, fully.
SATISFIED_ANSWERS = frozenset({"satisfied", "basically_satisfied"})
APPROVE_WITHIN = timedelta(hours=1)  # evaluation.yaml `staff.approve_within` by default
COMMAND_CENTRE = Centres().command  # the default code of sla.yaml's command centre


@dataclass(frozen=True)
class Whom:
    """The entity a case is judged for: a level and its code (or supervisor id)."""

    level: Level
    entity: str

    @property
    def department(self) -> str | None:
        """The department judged on its own rounds; None: any (a place, the centre)."""
        return self.entity if self.level is Level.department else None

    def mine(self, task: Task) -> bool:
        """Whether `task` is this entity's: a supervisor's own, anyone's for the others."""
        return self.level is not Level.supervisor or task.supervisor == self.entity

    def dispatched(self, round: Round) -> bool:
        """Whether `round` counts for this entity: a dispatcher's own, any for the others."""
        return self.level is not Level.dispatcher or round.dispatcher == self.entity


def periods(at: datetime, zone: ZoneInfo) -> dict[PeriodKind, str]:
    """The day, ISO week and month `at` falls in, in the city's time zone."""
    local = at.astimezone(zone)
    year, week, _ = local.isocalendar()
    return {
        PeriodKind.day: local.strftime("%Y-%m-%d"),
        PeriodKind.week: f"{year:04d}-W{week:02d}",
        PeriodKind.month: local.strftime("%Y-%m"),
    }


def entities(case: CaseFacts, level: Level, command_centre: str = COMMAND_CENTRE) -> list[str]:
    """The entities of `level` the case counts for."""
    found: dict[Level, list[str | None]] = {
        Level.grid: [case.grid_code],
        Level.community: [case.community],
        Level.street: [case.street],
        # …and the supervisor of its grid, on 漏报率 alone (facts.py: `grid_supervisor`).
        Level.supervisor: list(dict.fromkeys([*case.supervisors, case.grid_supervisor])),
        Level.department: list(case.departments),
        Level.command_centre: [command_centre if case.dispatches or case.rounds else None],
        Level.district: [case.district],
        Level.operator: list(case.operators),
        Level.dispatcher: list(case.dispatchers),
        Level.shift_lead: list(case.shift_leads),
        # Scored when read (people.py), over the cases of their grids: stored nowhere.
        Level.grid_staff: [],
        Level.grid_team: [],
    }
    return [e for e in found[level] if e]


# --- the verdicts of one case ------------------------------------------------------------------


def _decided(case: CaseFacts) -> bool:
    return case.filed or case.voided


def _on_file(case: CaseFacts) -> bool:
    return case.filed and not case.voided


def _late(case: CaseFacts, department: str | None) -> bool:
    """Past a deadline: a place by any late round or a late check; a department by its own
    rounds only (the check is the supervisor's)."""
    own = any(r.late for r in _rounds(case, department))
    return own or (department is None and case.check_late)


def _when(condition: bool, verdict: bool) -> Verdict:
    return verdict if condition else None


def _rounds(case: CaseFacts, department: str | None) -> list[Round]:
    return [r for r in case.rounds if department is None or r.department == department]


def _owned(case: CaseFacts, department: str | None) -> bool:
    return department is None or case.owner == department


def _resolved(case: CaseFacts) -> Verdict:
    return _when(case.closed_at is not None, case.closed and not case.reopened)


def _on_time(tasks: list[Task | None], who: Whom) -> Verdict:
    """Every task of `who` that is judged was done in time; None when none is judged."""
    judged = [t for t in tasks if t is not None and who.mine(t) and t.judged]
    return _when(bool(judged), not any(t.late for t in judged))


Rule = Callable[[CaseFacts, Whom], Verdict]  # one indicator's judgment of a case

# The dispute tier a place's level is (矛盾纠纷: grid → community → street → district).
_TIER_OF = {
    Level.grid: "grid",
    Level.grid_staff: "grid",  # the disputes of the grids they work
    Level.grid_team: "grid",
    Level.community: "community",
    Level.street: "street",
    Level.district: "district",
}


def _solved_here(case: CaseFacts, who: Whom) -> Verdict:
    """A closed dispute that reached this place's tier: solved here (closed by this tier),
    or not (it went up)."""
    tier = _TIER_OF.get(who.level)
    if tier is None or case.dispute_closed_by is None or tier not in case.dispute_tiers:
        return None
    return case.dispute_closed_by == tier


def _mediated_in_time(case: CaseFacts, _: Whom) -> Verdict:
    """按时调解率 (the grid tier): a dispute the grid closed or passed up before its
    `mediate` clock broke (True), or late; judged once the grid let it go or was late."""
    if case.dispute_grid_opened is None:
        return None
    late = case.dispute_grid_late
    return _when(late or case.dispute_grid_done_at is not None, not late)


def _answered(case: CaseFacts) -> Verdict:
    """A resident's report decided at intake: answered directly (True), or filed or voided."""
    public = case.channel is not None and case.channel != Channel.supervisor.value
    return _when(public and (case.answered or _decided(case)), case.answered)


def _missed(case: CaseFacts, who: Whom) -> Verdict:
    """漏报率: a filed case first reported by the public (True) or found on patrol; a
    supervisor counts the cases of their grid (`grid_supervisor`)."""
    if who.level is Level.supervisor and case.grid_supervisor != who.entity:
        return None
    return _when(_on_file(case), case.public)


def _self_handled(case: CaseFacts, who: Whom) -> Verdict:
    """自处置率: a report of the grid's people (the supervisor channel) decided: fixed on
    the spot (True), or filed or voided; a supervisor counts its own reports."""
    if who.level is Level.supervisor and case.supervisor != who.entity:
        return None
    found = case.channel == Channel.supervisor.value
    return _when(found and (case.self_handled or _decided(case)), case.self_handled)


def _filed_on_time(case: CaseFacts, who: Whom) -> Verdict:
    filing = case.filing
    if filing is None or filing.done_at is None or filing.by != who.entity:
        return None
    return not filing.late


def _verdicts(satisfied: int, approve_within: timedelta = APPROVE_WITHIN) -> dict[Indicator, Rule]:
    """Each indicator's judgment of a case, for one entity."""

    def handling(case: CaseFacts, who: Whom) -> Verdict:
        due = [r for r in _rounds(case, who.department) if r.due]
        return _when(bool(due), not any(r.late for r in due))

    def rework(case: CaseFacts, who: Whom) -> Verdict:
        handled = [r for r in _rounds(case, who.department) if r.handled_at is not None]
        return _when(bool(handled), any(r.reworked for r in handled))

    def dispatch(case: CaseFacts, who: Whom) -> Verdict:
        rounds = [r for r in _rounds(case, who.department) if who.dispatched(r)]
        return _when(bool(rounds), not any(r.returned for r in rounds))

    def response(case: CaseFacts, who: Whom) -> Verdict:
        rounds = _rounds(case, who.department)
        return _when(bool(rounds), any(r.responded for r in rounds))

    def filing(case: CaseFacts, who: Whom) -> Verdict:
        if who.level is Level.supervisor and case.supervisor != who.entity:
            return None  # a supervisor answers for its own reports only
        return _when(_decided(case) and case.state != "merged", _on_file(case))

    def satisfaction(case: CaseFacts) -> Verdict:
        return _when(case.rating is not None, (case.rating or 0) >= satisfied)

    def urge_replies(case: CaseFacts, who: Whom) -> Verdict:
        mine = [u for u in case.urges if who.department in (None, u.department)]
        judged = [u for u in mine if u.judged(case.seen_until)]
        return _when(bool(judged), not any(u.late(case.seen_until) for u in judged))

    def callback(judge: Callable[[CallbackFact], bool]) -> Rule:
        def rule(case: CaseFacts, who: Whom) -> Verdict:
            answered = case.callback
            if answered is None or who.department not in (None, answered.department):
                return None
            return judge(answered)

        return rule

    def approvals(case: CaseFacts, who: Whom) -> Verdict:
        decided = [a for a in case.approvals if a.decided_by == who.entity]
        return _when(bool(decided), all(a.on_time(approve_within) for a in decided))

    def owned(judge: Callable[[CaseFacts], Verdict]) -> Rule:
        return lambda case, who: judge(case) if _owned(case, who.department) else None

    def on_time_closure(case: CaseFacts, who: Whom) -> Verdict:
        if not _owned(case, who.department) or case.dispute_tiers:
            return None  # a dispute is counted apart (disputes_solved_here)
        late = _late(case, who.department)
        return _when(case.closed or late, case.closed and not late)

    return {
        Ind.filing_rate: filing,
        Ind.dispatch_accuracy: dispatch,
        Ind.on_time_handling: handling,
        Ind.closure: owned(lambda c: _when(_on_file(c), c.closed)),
        Ind.on_time_closure: on_time_closure,
        Ind.rework: rework,
        Ind.supervisor_share: lambda c, _: _when(_on_file(c), c.channel == "supervisor"),
        Ind.response: response,
        Ind.resolution: owned(_resolved),
        Ind.satisfaction: owned(satisfaction),
        Ind.on_time_dispatch: lambda c, who: _on_time(list(c.dispatches), who),
        Ind.on_time_verification: lambda c, who: _on_time([c.verification], who),
        Ind.on_time_check: lambda c, who: _on_time(list(c.checks), who),
        Ind.urge_replies: urge_replies,
        Ind.callback_response: callback(lambda c: c.contacted),
        Ind.callback_resolution: callback(lambda c: c.solved),
        Ind.callback_satisfaction: callback(lambda c: c.satisfaction in SATISFIED_ANSWERS),
        Ind.answered_directly: lambda c, _: _answered(c),
        Ind.on_time_filing: _filed_on_time,
        Ind.on_time_approval: approvals,
        Ind.disputes_solved_here: _solved_here,
        Ind.missed_reports: _missed,
        Ind.self_handled: _self_handled,
        Ind.on_time_mediation: _mediated_in_time,
        Ind.visit_coverage: lambda c, _: None,  # households, not cases: people.py counts it
    }


# --- counting ------------------------------------------------------------------------------------


@dataclass
class Counted:
    """An indicator's figure with the cases behind it (the drill-down)."""

    numerator: list[str] = field(default_factory=list)
    denominator: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> Ratio:
        return Ratio(numerator=len(self.numerator), denominator=len(self.denominator))

    def shown_to(self, department: str | None, cases: Iterable[CaseFacts]) -> Counted:
        """The drill-down as `department` may see it: the cases it was dispatched to (a
        department reads no other's cases; the figure itself is everyone's). Staff of the
        centres (None) see every case."""
        if department is None:
            return self
        mine = {case.case_id for case in cases if department in case.departments}
        return Counted(
            [c for c in self.numerator if c in mine], [c for c in self.denominator if c in mine]
        )


def count(
    level: Level,
    entity: str,
    cases: Iterable[CaseFacts],
    satisfied: int = SATISFIED,
    approve_within: timedelta = APPROVE_WITHIN,
) -> dict[Indicator, Counted]:
    """Every indicator that applies to `level`, over the cases of one entity and period
    (case ids sorted, so the same cases give the same answer)."""
    who = Whom(level, entity)
    judges = _verdicts(satisfied, approve_within)
    counted = {indicator: Counted() for indicator in APPLIES[level]}
    for case in sorted(cases, key=lambda c: c.case_id):
        for indicator, tally in counted.items():
            verdict = judges[indicator](case, who)
            if verdict is None:
                continue
            tally.denominator.append(case.case_id)
            if verdict:
                tally.numerator.append(case.case_id)
    return counted


Judgement = dict[Indicator, Verdict]


class Judge:
    """`count`'s verdicts of a case for an entity, each worked out once: a case counts in
    the day, week and month of its report and is judged the same in all three, so a
    recomputation of many scores judges each case once per entity, not once per score."""

    def __init__(self, satisfied: int = SATISFIED, approve_within: timedelta = APPROVE_WITHIN):
        self._judges = _verdicts(satisfied, approve_within)
        self._done: dict[tuple[Level, str, str], Judgement] = {}

    def __call__(self, level: Level, entity: str, case: CaseFacts) -> Judgement:
        key = (level, entity, case.case_id)
        if key not in self._done:
            who = Whom(level, entity)
            self._done[key] = {i: self._judges[i](case, who) for i in APPLIES[level]}
        return self._done[key]


def tally(level: Level, judgements: Iterable[Judgement]) -> dict[Indicator, Ratio]:
    """The ratios `count` gives, from the cases' verdicts (without the case ids)."""
    numerators, denominators = dict.fromkeys(APPLIES[level], 0), dict.fromkeys(APPLIES[level], 0)
    for judgement in judgements:
        for indicator, verdict in judgement.items():
            if verdict is not None:
                denominators[indicator] += 1
                numerators[indicator] += verdict
    return {i: Ratio(numerator=numerators[i], denominator=denominators[i]) for i in APPLIES[level]}
