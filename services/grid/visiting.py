"""Visits (走访), pure: a grid person's visit log and what a finding becomes. No HTTP, Kafka or
MongoDB.

A visit is decided here (`decide_visit`): who (a grid's own staff), when, which households
of the grid, and what residents raised (findings by type). A finding becomes a case or a
dispute in one action (`decide_report`): the report intake receives for it, kind `dispute`
for a dispute (`REPORT_KIND`, the one place a finding type maps to a report kind). The
register's doors are `doors.py`'s, coverage is `coverage.py`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from gridloop.access import Principal
from gridloop.refusal import conflict, invalid, not_found
from schemas.events import FindingReported, VisitFinding, VisitLogged
from services.grid.doors import Household, actor_of, may_act

# A visit is logged within this long of when it was made (a handheld offline for days still
# sends it); a time further ahead than the clocks' skew is refused.
LATE_LIMIT = timedelta(days=30)
SKEW = timedelta(minutes=5)


class FindingType(StrEnum):
    """What a resident raised on a visit (民情)."""

    dispute = "dispute"  # 矛盾纠纷
    need = "need"  # 诉求
    suggestion = "suggestion"  # 建议
    safety_hazard = "safety_hazard"  # 安全隐患
    fire_hazard = "fire_hazard"  # 消防隐患
    sanitation = "sanitation"  # 环境卫生


# The one place a finding type says what kind of report it becomes: a dispute is a report
# of kind `dispute` (owned by the tier offices); the others an ordinary case, of the kind
# (component or event) and class the grid person names.
REPORT_KIND: dict[FindingType, str] = {FindingType.dispute: "dispute"}


# --- visits -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """What a resident raised: its type, a short text, the household it concerns (if one),
    and once reported, the case it became (`case_id`) and the report's kind."""

    type: FindingType
    text: str
    household: str | None = None
    case_id: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class Visit:
    """A grid person's visit (走访) to households of one grid, at `at`."""

    id: str
    grid: str
    staff: str
    at: datetime
    households: tuple[str, ...]
    findings: tuple[Finding, ...] = ()
    logged_at: datetime | None = None


@dataclass(frozen=True)
class LogVisit:
    """A grid person logs a visit: `who` signed in (Role.grid_staff, subject = staff id)."""

    visit_id: str
    grid: str
    who: Principal
    at: datetime
    households: tuple[str, ...]
    findings: tuple[Finding, ...] = ()


def decide_visit(
    log: LogVisit, register: Iterable[Household], theirs: Sequence[str], now: datetime
) -> Visit:
    """The visit logged, or refused: another grid's person (403), a time in the future or
    older than `LATE_LIMIT` (422), a household that is not on the grid's register, named
    twice, or a finding about a household the visit did not visit (422)."""
    may_act(log.who, log.grid, theirs)
    if log.at > now + SKEW:
        raise invalid(("body", "at"), "a visit cannot be logged before it is made", "future")
    if log.at < now - LATE_LIMIT:
        raise invalid(("body", "at"), f"a visit is logged within {LATE_LIMIT.days} days", "late")
    doors = {h.id: h for h in register if h.grid == log.grid}
    for i, hid in enumerate(log.households):
        door = doors.get(hid)
        if door is None or not door.on_register(log.at):
            raise invalid(
                ("body", "households", str(i)),
                f"{hid} is not a door of grid {log.grid}",
                "unknown_household",
            )
        if hid in log.households[:i]:
            raise invalid(("body", "households", str(i)), f"{hid} is named twice", "duplicate")
    for i, f in enumerate(log.findings):
        if f.household is not None and f.household not in log.households:
            raise invalid(
                ("body", "findings", str(i), "household"),
                f"{f.household} was not visited",
                "not_visited",
            )
    findings = tuple(replace(f, case_id=None, kind=None) for f in log.findings)
    return Visit(log.visit_id, log.grid, log.who.subject, log.at, log.households, findings, now)


# --- a finding becomes a case or a dispute -------------------------------------------------------


@dataclass(frozen=True)
class ReportFinding:
    """Make finding `index` of a visit a case (or a dispute): where (`point`, the handheld's
    GPS) and, for an ordinary case, the catalogue's kind and class."""

    visit_id: str
    index: int
    who: Principal
    lon: float
    lat: float
    kind: str | None = None  # component or event; a dispute's kind is `dispute`
    class_code: str | None = None
    urgency: str | None = None


def report_kind(finding: Finding, asked: str | None) -> str:
    """The kind of report a finding becomes: a dispute's is fixed (`REPORT_KIND`); an
    ordinary finding takes the kind asked for (an event by default)."""
    fixed = REPORT_KIND.get(finding.type)
    if fixed is not None:
        if asked not in (None, fixed):
            raise invalid(("body", "kind"), f"a {finding.type} finding is a {fixed}", "kind")
        return fixed
    if asked == "dispute":
        raise invalid(("body", "kind"), "only a dispute finding is a dispute", "kind")
    return asked or "event"


def finding_of(visit: Visit, index: int) -> Finding:
    if not 0 <= index < len(visit.findings):
        raise not_found(("path", "finding"), f"visit {visit.id} has no finding {index}")
    return visit.findings[index]


def decide_report(
    visit: Visit, ask: ReportFinding, theirs: Sequence[str]
) -> tuple[Finding, dict[str, object]]:
    """The finding and the report intake is to receive for it (`POST /reports`), through
    the supervisor channel (what a grid person sees on site is filed at once); refused for
    another grid's person (403), an unknown finding (404), one reported already (409)."""
    may_act(ask.who, visit.grid, theirs)
    finding = finding_of(visit, ask.index)
    if finding.case_id is not None:
        raise conflict(
            ("path", "finding"), f"finding {ask.index} is case {finding.case_id}", "reported"
        )
    kind = report_kind(finding, ask.kind)
    report: dict[str, object] = {
        "channel": "supervisor",
        "kind": kind,
        "point": {"lon": ask.lon, "lat": ask.lat},
        "description": f"走访 {finding.type}: {finding.text}",
        "reporter": {"id": visit.staff},
    }
    if ask.class_code is not None:
        report["class_code"] = ask.class_code
    if ask.urgency is not None:
        report["urgency"] = ask.urgency
    return finding, report


def reported(visit: Visit, index: int, case_id: str, kind: str) -> Visit:
    """The visit with finding `index` recorded as case `case_id`."""
    findings = list(visit.findings)
    findings[index] = replace(findings[index], case_id=case_id, kind=kind)
    return replace(visit, findings=tuple(findings))


# --- the events they publish ---------------------------------------------------------------------


def visit_logged(visit: Visit, who: Principal) -> VisitLogged:
    findings = [
        VisitFinding(type=f.type.value, text=f.text, household=f.household) for f in visit.findings
    ]
    return VisitLogged(
        case_id=visit.grid,
        actor=actor_of(who),
        staff=visit.staff,
        visit=visit.id,
        at=visit.at,
        households=list(visit.households),
        findings=findings,
    )


def finding_reported(visit: Visit, index: int, who: Principal) -> FindingReported:
    finding = visit.findings[index]
    assert finding.case_id is not None and finding.kind is not None
    return FindingReported(
        case_id=visit.grid,
        actor=actor_of(who),
        staff=who.subject[:64],
        visit=visit.id,
        finding=index,
        finding_type=finding.type.value,
        reported_case=finding.case_id,
        kind=finding.kind,
    )
