"""Households and visits (走访), pure: the register's doors as they change, a grid person's
visit log, what a finding becomes, and coverage (走访覆盖率). No HTTP, Kafka or MongoDB.

A visit is decided here (`decide_visit`): who (a grid's own staff), when, which households
of the grid, and what residents raised (findings by type). A finding becomes a case or a
dispute in one action (`decide_report`): the report intake receives for it, kind `dispute`
for a dispute (`REPORT_KIND`, the one place a finding type maps to a report kind).
Coverage is the share of a grid's households visited in a period (`coverage`), of the
register as it stands at the period's end, vacant doors left out (there is no one to visit).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from gridloop.access import Principal, Role
from gridloop.citypack.households import HouseholdEntry, Occupancy
from gridloop.refusal import Refused, Why, conflict, invalid, not_found
from schemas.events import (
    FindingReported,
    GridActor,
    HouseholdChanged,
    VisitFinding,
    VisitLogged,
)

# A visit is logged within this long of when it was made (a handheld offline for days still
# sends it); a time further ahead than the clocks' skew is refused.
LATE_LIMIT = timedelta(days=30)
SKEW = timedelta(minutes=5)
MAX_FINDINGS = 20


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


# --- the register ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Household:
    """A door of a grid's register: its occupancy since each change (`changes`, oldest
    first; a change at None is the pack's, from the start), on the register from `since`
    (None: the pack's) until `until` (None: still)."""

    id: str
    grid: str
    building: str
    door: str
    changes: tuple[tuple[datetime | None, Occupancy], ...]
    since: datetime | None = None
    until: datetime | None = None
    name: str | None = None

    @property
    def occupancy(self) -> Occupancy:
        return self.changes[-1][1]

    def occupancy_at(self, at: datetime) -> Occupancy | None:
        """How the door was used at `at` (None: not yet on the register)."""
        found = [o for when, o in self.changes if when is None or when <= at]
        return found[-1] if found else None

    def on_register(self, at: datetime) -> bool:
        started = self.since is None or self.since <= at
        return started and (self.until is None or at < self.until)


def from_pack(entry: HouseholdEntry) -> Household:
    return Household(
        entry.id,
        entry.grid,
        entry.building,
        entry.door,
        ((None, entry.occupancy),),
        name=entry.name,
    )


@dataclass(frozen=True)
class RegisterDoor:
    """A grid person adds a door to the grid's register."""

    household_id: str
    grid: str
    building: str
    door: str
    occupancy: Occupancy
    name: str | None = None


@dataclass(frozen=True)
class ChangeDoor:
    """A door's occupancy (and name, where names are kept) changed, or the door removed."""

    occupancy: Occupancy | None = None
    name: str | None = None
    removed: bool = False


def decide_register(
    door: RegisterDoor, register: Iterable[Household], names: bool, now: datetime
) -> Household:
    """The new door, refused when it names someone where names are off (422) or is on the
    grid's register already (409)."""
    _names_allowed(door.name, names)
    for h in register:
        if h.until is None and (h.building, h.door) == (door.building, door.door):
            raise conflict(
                ("body", "door"), f"door {door.door} of {door.building} is {h.id} already", "exists"
            )
    return Household(
        door.household_id,
        door.grid,
        door.building,
        door.door,
        ((now, door.occupancy),),
        since=now,
        name=door.name,
    )


def decide_change(
    household: Household, change: ChangeDoor, names: bool, now: datetime
) -> Household:
    """The door after `change` — the same door when it changes nothing (a retry: no new
    fact), removal of a removed door included; refused on a removed door (409), a name where
    names are off (422), and a change that says nothing (422)."""
    if household.until is not None:
        if change.removed:
            return household
        raise conflict(("path", "household"), f"{household.id} was removed", "removed")
    _names_allowed(change.name, names)
    if change.removed:
        return replace(household, until=now)
    if change.occupancy is None and change.name is None:
        raise invalid(("body",), "say the new occupancy, name or removed: true", "empty_change")
    changes = household.changes
    if change.occupancy is not None and change.occupancy is not household.occupancy:
        changes = (*changes, (now, change.occupancy))
    return replace(household, changes=changes, name=change.name or household.name)


def _names_allowed(name: str | None, names: bool) -> None:
    if name is not None and not names:
        raise invalid(
            ("body", "name"),
            "this city keeps no names in its household register (city.yaml households.names)",
            "names_off",
        )


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


def may_act(who: Principal, grid: str, theirs: Sequence[str]) -> None:
    """Only a grid's own staff act in it: another grid's staff, or any other role, is
    refused (403)."""
    if who.role is not Role.grid_staff:
        raise Refused(Why.forbidden, ("header", "Authorization"), "only grid staff do this")
    if grid not in theirs:
        raise Refused(Why.forbidden, ("path", "grid"), f"{who.subject} does not work grid {grid}")


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


# --- coverage -----------------------------------------------------------------------------------

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_QUARTER = re.compile(r"(\d{4})-Q([1-4])")
_YEAR = re.compile(r"(\d{4})")


@dataclass(frozen=True)
class Period:
    """A month (`2026-12`), a quarter (`2026-Q4`: Zhoushan visits each household four times
    a year) or a year (`2026`), from `start` to `end` (exclusive) in the city's time."""

    name: str
    start: datetime
    end: datetime


def period_of(name: str, timezone: str) -> Period:
    """The period `name` names, in the city's time zone; refused (422) when it names none."""
    first, months = _bounds(name)
    tz = ZoneInfo(timezone)
    last = _add_months(first, months)
    return Period(
        name,
        datetime(first.year, first.month, 1, tzinfo=tz),
        datetime(last.year, last.month, 1, tzinfo=tz),
    )


def _bounds(name: str) -> tuple[date, int]:
    bad = invalid(
        ("query", "period"),
        f"{name[:20]!r} is not a period: use 2026-12, 2026-Q4 or 2026",
        "bad_period",
    )
    if m := _MONTH.fullmatch(name):
        if not 1 <= int(m[2]) <= 12:
            raise bad
        return date(int(m[1]), int(m[2]), 1), 1
    if m := _QUARTER.fullmatch(name):
        return date(int(m[1]), 3 * int(m[2]) - 2, 1), 3
    if m := _YEAR.fullmatch(name):
        return date(int(m[1]), 1, 1), 12
    raise bad


def _add_months(first: date, months: int) -> date:
    total = first.year * 12 + first.month - 1 + months
    return date(total // 12, total % 12 + 1, 1)


@dataclass(frozen=True)
class Coverage:
    """走访覆盖率: of a grid's `households` to visit in a period (on the register at its end,
    not vacant), how many were `visited`; `unvisited` names the rest, by id."""

    grid: str
    period: str
    households: int
    visited: int
    unvisited: tuple[str, ...] = field(default=())

    @property
    def ratio(self) -> float | None:
        return self.visited / self.households if self.households else None


def coverage(
    grid: str,
    period: Period,
    register: Iterable[Household],
    visits: Iterable[Visit],
    now: datetime,
) -> Coverage:
    """Households visited ÷ households of `grid` in `period`: the register as it stands at
    the period's end (or `now`, for a period not over), vacant doors left out; a household
    counts once however often it was visited, by visits made in the period."""
    at = min(period.end - timedelta(microseconds=1), now)
    due = sorted(
        h.id
        for h in register
        if h.grid == grid
        and h.on_register(at)
        and h.occupancy_at(at) not in (None, Occupancy.vacant)
    )
    seen = {
        hid
        for v in visits
        if v.grid == grid and period.start <= v.at < period.end
        for hid in v.households
    }
    visited = [h for h in due if h in seen]
    return Coverage(
        grid, period.name, len(due), len(visited), tuple(h for h in due if h not in seen)
    )


# --- the events they publish ---------------------------------------------------------------------


def actor_of(who: Principal) -> GridActor:
    return GridActor(role=who.role.value, id=who.subject[:64])


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


def household_changed(household: Household, change: int, who: Principal) -> HouseholdChanged:
    """The door's fact for the log: where and how it is used, never its name."""
    return HouseholdChanged(
        case_id=household.grid,
        actor=actor_of(who),
        household=household.id,
        building=household.building,
        door=household.door,
        occupancy=household.occupancy.value,
        removed=household.until is not None,
        change=change,
    )
