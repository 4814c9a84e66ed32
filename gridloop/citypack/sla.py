"""The SLA part of a city pack (`sla.yaml`): office hours, the calendar years the city
supplies, stage time limits (时限) per class and urgency, escalation ladders (逐级上报) and the
office each tier notifies. Loaded and validated with the rest of the pack
(`load_city_pack(path).sla`); pure once loaded.

    policy = pack.sla
    terms = policy.terms("event", "0102", "normal")
    terms.limits[Stage.handle], terms.clock, terms.ladder
    policy.deadline(Stage.handle, "event", "0102", "urgent", since)   # due, assumed years
    policy.resumed("event", "0102", None, deadline, parked_at, now)   # after parking (挂账)
    policy.office("street", grid_code)

`deadline` is the one computation of a stage's deadline: intake shows the verification
task's, dispatch tells the department the handling deadline it gives, the SLA engine times
every other stage with it; `resumed` moves a parked case's deadline by the time it was
parked, for dispatch to tell the department when the case resumes.

A pack without `sla.yaml` times the verification of citizen reports (`intake.verify_limit`
of city.yaml) and the handling stage (each class's `handle_limit`), on the class's clock
with the default office hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gridloop.calendar import (
    Clock,
    NaturalClock,
    OfficeHours,
    WorkingCalendar,
    YearDays,
    chinese_calendar_years,
    merge_years,
)
from gridloop.citypack.disputes import DisputeLadder, DisputesFile, dispute_problems
from gridloop.citypack.errors import read_model
from gridloop.citypack.model import CityFile, EventClass, Street
from schemas.events import Kind, Stage, Urgency

Tier = Literal["community", "street", "district", "city"]
TIERS: tuple[Tier, ...] = ("community", "street", "district", "city")
ClockKind = Literal["working", "natural"]
DEFAULT_URGENCY = "normal"
HOTLINE = "hotline"  # the channel whose cases the hotline's time classes time
SLA_FILE = "sla.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rung(_Strict):
    """One step up the ladder: `tier` is notified `after` the breach (grace period)."""

    tier: Tier
    after: timedelta


class YearFile(_Strict):
    """A year the city supplies (published each November): its days off and 调休 days."""

    holidays: list[date]
    workdays: list[date] = []


class Match(_Strict):
    kind: Kind | None = None
    code: Annotated[str | None, Field(pattern=r"^\d{4,5}$")] = None
    urgency: Urgency | None = None


class Rule(_Strict):
    """Applied in order to the cases it matches; each sets only what it names."""

    match: Match = Match()
    clock: ClockKind | None = None
    limits: dict[Stage, timedelta] = {}
    ladder: list[Rung] | None = None


class Offices(_Strict):
    """The department that each tier's escalations are delivered to."""

    community: dict[Annotated[str, Field(pattern=r"^\d{6}$")], str] = {}
    street: dict[Annotated[str, Field(pattern=r"^\d{3}$")], str] = {}  # default: city.yaml
    district: str | None = None
    city: str | None = None


class Centres(_Strict):
    """Who answers for the stages before and after the department's: verify, file and check
    (supervision centre 监督中心), dispatch (command centre 指挥中心)."""

    supervision: Annotated[str, Field(pattern=r"^[A-Z0-9-]{2,32}$")] = "SUPERVISION-CENTRE"
    command: Annotated[str, Field(pattern=r"^[A-Z0-9-]{2,32}$")] = "COMMAND-CENTRE"


class Approvals(_Strict):
    """Which actions wait for the shift lead's (值班长) approval. A department's extensions
    and parking always do; its return (回退) and a parked case's resumption (挂账恢复), and
    an intake operator's void (作废), where the city says so."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    return_: bool = Field(False, alias="return")
    resume: bool = False
    void: bool = False  # an intake operator's 作废


class Urging(_Strict):
    """督办: how long an urged department has to reply, on which clock."""

    reply_within: timedelta = timedelta(hours=4)
    clock: ClockKind = "working"


class TimeClass(_Strict):
    """A hotline time class (办理时限类别): the limit of its feedback to the resident, on its
    clock."""

    limit: timedelta
    clock: ClockKind


class HotlineMatch(_Strict):
    """Cases of a time class: by kind, class code or its major (the first two digits), and
    urgency; what a match does not name, it does not check."""

    kind: Kind | None = None
    code: Annotated[str | None, Field(pattern=r"^\d{4,5}$")] = None
    major: Annotated[str | None, Field(pattern=r"^\d{2}$")] = None
    urgency: Urgency | None = None

    def matches(self, kind: str, code: str, urgency: str) -> bool:
        return (
            (self.kind is None or self.kind == kind)
            and (self.code is None or self.code == code)
            and (self.major is None or code[:2] == self.major)
            and (self.urgency is None or self.urgency == urgency)
        )


class Assignment(_Strict):
    match: HotlineMatch
    time_class: Annotated[str, Field(min_length=1, max_length=40)]


class Hotline(_Strict):
    """The 12345 hotline's time classes for cases that came in by the hotline (channel
    `hotline`): each case falls in the first class `assign` matches, else in `default`;
    its class's limit is the handling limit (from the dispatch) and its clock the case's."""

    time_classes: Annotated[dict[str, TimeClass], Field(min_length=1)]
    default: str
    assign: list[Assignment] = []

    def time_class(self, kind: str, code: str, urgency: str) -> str:
        found = (a.time_class for a in self.assign if a.match.matches(kind, code, urgency))
        return next(found, self.default)


class SlaFile(_Strict):
    format: Literal["gridloop-sla/1"]
    office_hours: list[tuple[time, time]]
    warning_at: Annotated[float, Field(gt=0, lt=1)] = 0.8
    calendar: dict[int, YearFile] = {}
    centres: Centres = Centres()
    rules: list[Rule] = []
    offices: Offices = Offices()
    approvals: Approvals = Approvals()
    urging: Urging = Urging()
    hotline: Hotline | None = None  # none: hotline cases are timed like any other
    disputes: DisputesFile | None = None  # none: the city takes no disputes (矛盾纠纷)

    @field_validator("office_hours")
    @classmethod
    def _valid_hours(cls, value: list[tuple[time, time]]) -> list[tuple[time, time]]:
        OfficeHours(tuple(value))
        return value


@dataclass(frozen=True)
class Terms:
    """What applies to one case: its clock, stage limits (as clock time) and ladder."""

    clock_kind: ClockKind
    limits: dict[Stage, timedelta]
    ladder: tuple[Rung, ...]


@dataclass(frozen=True)
class Deadline:
    """When a stage started at `since` falls due: `limit` of clock time later, on the
    class's clock; `assumed_years` are the years on the way nobody supplied a calendar for
    (reckoned on weekends alone, so `due` is an estimate)."""

    since: datetime
    due: datetime
    limit: timedelta
    assumed_years: tuple[int, ...] = ()


class SlaPolicy:
    """The loaded SLA policy of a city: answers which limits, clock and ladder apply."""

    def __init__(self, file: SlaFile, city: CityFile) -> None:
        self.file = file
        self.classes: dict[tuple[str, str], EventClass] = {
            (c.kind, c.code): c for c in city.classes
        }
        # A citizen report's verification task (核实): city.yaml's `verify_limit` unless a
        # rule says otherwise, so the task's due time and the engine's clock are one.
        self.verify_limit = city.intake.verify_limit
        self.streets: dict[str, Street] = {s.code: s for s in city.streets}
        self.warning_at = file.warning_at
        # The urgencies the city grades reports by: `normal` and every one a rule names.
        self.urgencies = frozenset(
            {DEFAULT_URGENCY} | {r.match.urgency for r in file.rules if r.match.urgency}
        )
        years = {
            y: YearDays(frozenset(f.holidays), frozenset(f.workdays))
            for y, f in file.calendar.items()
        }
        self.calendar = WorkingCalendar(
            merge_years(chinese_calendar_years(), years), OfficeHours(tuple(file.office_hours))
        )
        self.natural = NaturalClock()
        self.disputes = (
            DisputeLadder(file.disputes, self.clock(file.disputes.clock))
            if file.disputes is not None
            else None
        )
        self._terms: dict[tuple[str, str, str, bool], Terms] = {}

    def clock(self, kind: ClockKind) -> Clock:
        return self.calendar if kind == "working" else self.natural

    @property
    def returns_need_approval(self) -> bool:
        """Whether a department's return (回退) waits for the shift lead's approval."""
        return self.file.approvals.return_

    @property
    def voids_need_approval(self) -> bool:
        """Whether an intake operator's void (作废) waits for the shift lead's approval (a
        supervisor's refuting verification never does)."""
        return self.file.approvals.void

    @property
    def resumes_need_approval(self) -> bool:
        """Whether a department's resumption of a parked case (挂账恢复) waits for the
        shift lead's approval (the command centre's own resumption never does)."""
        return self.file.approvals.resume

    def reply_by(self, since: datetime) -> Deadline:
        """When a department urged (督办) at `since` owes its reply: the pack's reply limit
        added on its clock (working time: office hours on working days)."""
        urging = self.file.urging
        clock = self.clock(urging.clock)
        due = clock.add(since, urging.reply_within)
        limit = urging.reply_within
        return Deadline(since, due, limit, tuple(sorted(clock.assumed_years(since, due))))

    def terms(
        self,
        kind: str | None,
        code: str | None,
        urgency: str | None = None,
        channel: str | None = None,
    ) -> Terms:
        """Limits, clock and ladder of a class at an urgency, for a case that came in by
        `channel` (the hotline's time classes apply to the hotline's cases; memoised: a
        pack is fixed)."""
        hotline = channel == HOTLINE and self.file.hotline is not None
        key = (kind or "", code or "", urgency or DEFAULT_URGENCY, hotline)
        found = self._terms.get(key)
        if found is None:
            found = self._terms[key] = self._resolve(*key)
        return found

    def time_class(self, kind: str | None, code: str | None, urgency: str | None) -> str | None:
        """The hotline time class of a hotline case of this class and urgency (None: the
        pack has no hotline profile)."""
        if self.file.hotline is None:
            return None
        return self.file.hotline.time_class(kind or "", code or "", urgency or DEFAULT_URGENCY)

    def deadline(
        self,
        stage: Stage,
        kind: str | None,
        code: str | None,
        urgency: str | None,
        since: datetime,
        channel: str | None = None,
    ) -> Deadline | None:
        """The deadline of `stage` for a case of this class and urgency started at `since`:
        the stage's limit added on the class's clock (working time: office hours on working
        days); for a hotline case under a hotline profile, the handling limit and the clock
        of its time class. None when the policy does not time the stage for this class."""
        terms = self.terms(kind, code, urgency, channel)
        limit = terms.limits.get(stage)
        if limit is None:
            return None
        clock = self.clock(terms.clock_kind)
        due = clock.add(since, limit)
        return Deadline(since, due, limit, tuple(sorted(clock.assumed_years(since, due))))

    def resumed(
        self,
        kind: str | None,
        code: str | None,
        urgency: str | None,
        deadline: datetime,
        parked_at: datetime,
        now: datetime,
        channel: str | None = None,
    ) -> Deadline:
        """The deadline of a stage that was due at `deadline` when it was paused at
        `parked_at` (挂账) and runs again `now`: the clock time it had left, added from now
        on the class's clock (none left when it was parked overdue: due now). The SLA
        engine's paused clock keeps exactly that time left."""
        clock = self.clock(self.terms(kind, code, urgency, channel).clock_kind)
        left = clock.between(parked_at, deadline)
        due = clock.add(now, left)
        return Deadline(now, due, left, tuple(sorted(clock.assumed_years(now, due))))

    def _resolve(self, kind: str, code: str, urgency: str, hotline: bool) -> Terms:
        cls = self.classes.get((kind, code))
        clock: ClockKind = cls.clock if cls else "working"
        limits: dict[Stage, timedelta] = {Stage.verify: self.verify_limit}
        if cls is not None:
            limits[Stage.handle] = cls.handle_limit
        ladder: tuple[Rung, ...] = ()
        for rule in self.file.rules:
            m = rule.match
            if (
                (m.kind is not None and m.kind != kind)
                or (m.code is not None and m.code != code)
                or (m.urgency is not None and m.urgency != urgency)
            ):
                continue
            clock = rule.clock or clock
            limits.update(rule.limits)
            if rule.ladder is not None:
                ladder = tuple(rule.ladder)
        if hotline and self.file.hotline is not None:  # the hotline's time class decides
            timed = self.file.hotline.time_classes[
                self.file.hotline.time_class(kind, code, urgency)
            ]
            clock, limits[Stage.handle] = timed.clock, timed.limit
        measure = self.clock(clock)
        return Terms(
            clock,
            {stage: measure.working(limit) for stage, limit in limits.items()},
            tuple(Rung(tier=r.tier, after=measure.working(r.after)) for r in ladder),
        )

    def office(self, tier: Tier, grid_code: str | None) -> str | None:
        """The department an escalation to `tier` is delivered to, for a case in that grid."""
        offices = self.file.offices
        if tier == "district":
            return offices.district
        if tier == "city":
            return offices.city
        if grid_code is None:
            return None
        if tier == "community":
            return offices.community.get(grid_code[6:12])
        street = grid_code[6:9]
        if street in offices.street:
            return offices.street[street]
        known = self.streets.get(street)
        return known.office if known else None

    def centre(self, stage: Stage) -> str:
        if stage is Stage.dispatch:
            return self.file.centres.command
        return self.file.centres.supervision

    def thresholds(self) -> list[float]:
        """Every distinct limit in seconds of clock time: histogram buckets at the SLAs."""
        seconds: set[float] = set()
        for rule in self.file.rules:
            for stage, limit in rule.limits.items():
                clock = self.clock(rule.clock or "working")
                seconds.add(clock.working(limit).total_seconds())
                del stage
        for cls in self.classes.values():
            seconds.add(self.clock(cls.clock).working(cls.handle_limit).total_seconds())
        if self.file.hotline is not None:
            for timed in self.file.hotline.time_classes.values():
                seconds.add(self.clock(timed.clock).working(timed.limit).total_seconds())
        seconds.add(self.calendar.working(self.verify_limit).total_seconds())
        return sorted(s for s in seconds if s > 0)


DEFAULT = SlaFile(
    format="gridloop-sla/1",
    office_hours=[(time(9), time(12)), (time(13, 30), time(17, 30))],
)


def _cross_check(file: SlaFile, city: CityFile) -> list[str]:
    errors = []
    departments = {d.code for d in city.departments}
    classes = {(c.kind, c.code) for c in city.classes}
    streets = {s.code for s in city.streets}
    named = [
        *(f"offices.community.{c}: {d}" for c, d in file.offices.community.items()),
        *(f"offices.street.{s}: {d}" for s, d in file.offices.street.items()),
        *(f"offices.{t}: {d}" for t in ("district", "city") if (d := getattr(file.offices, t))),
    ]
    for entry in named:
        where, department = entry.rsplit(": ", 1)
        if department not in departments:
            errors.append(f"{SLA_FILE}: {where}: unknown department {department}")
    communities = {c.code for c in city.communities}
    for community in file.offices.community:
        if community not in communities:
            errors.append(f"{SLA_FILE}: offices.community: unknown community {community}")
    for street in file.offices.street:
        if street not in streets:
            errors.append(f"{SLA_FILE}: offices.street: unknown street {street}")
    for n, rule in enumerate(file.rules):
        m = rule.match
        if m.code is not None and m.kind is None:
            errors.append(f"{SLA_FILE}: rules.{n}: a class code needs its kind")
        elif m.code is not None and (m.kind, m.code) not in classes:
            errors.append(f"{SLA_FILE}: rules.{n}: unknown {m.kind} class {m.code}")
        if rule.ladder is not None:
            tiers = [r.tier for r in rule.ladder]
            if tiers != sorted(tiers, key=TIERS.index) or len(set(tiers)) != len(tiers):
                errors.append(f"{SLA_FILE}: rules.{n}.ladder: tiers must go up, each once")
            graces = [r.after for r in rule.ladder]
            if graces != sorted(graces):
                errors.append(f"{SLA_FILE}: rules.{n}.ladder: grace periods must not shrink")
        for stage, limit in rule.limits.items():
            if limit <= timedelta(0):
                errors.append(f"{SLA_FILE}: rules.{n}.limits.{stage}: must be positive")
    if file.hotline is not None:
        errors += _hotline_problems(file.hotline, classes)
    if file.disputes is not None:
        errors += [f"{SLA_FILE}: {e}" for e in dispute_problems(file.disputes, "disputes")]
    if file.urging.reply_within <= timedelta(0):
        errors.append(f"{SLA_FILE}: urging.reply_within: must be positive")
    for year, days in file.calendar.items():
        for day in [*days.holidays, *days.workdays]:
            if day.year != year:
                errors.append(f"{SLA_FILE}: calendar.{year}: {day} is not in {year}")
    return errors


def load_sla(root: Path, city: CityFile | None, errors: list[str]) -> SlaPolicy | None:
    """`sla.yaml` of the pack at `root` (the default policy when there is none), checked
    against `city.yaml` when that loaded; every error is appended to `errors`, and None is
    returned when there was one."""
    path = root / SLA_FILE
    file = DEFAULT
    if path.exists():
        read = read_model(path, SlaFile, errors)
        if read is None:
            return None
        file = read
    if city is None:
        return None
    found = _cross_check(file, city)
    errors.extend(found)
    return None if found else SlaPolicy(file, city)


def _hotline_problems(hotline: Hotline, classes: set[tuple[Kind, str]]) -> list[str]:
    errors = []
    named = hotline.time_classes
    for name, timed in named.items():
        if timed.limit <= timedelta(0):
            errors.append(f"{SLA_FILE}: hotline.time_classes.{name}.limit: must be positive")
    if hotline.default not in named:
        errors.append(f"{SLA_FILE}: hotline.default: unknown time class {hotline.default}")
    for n, assigned in enumerate(hotline.assign):
        m = assigned.match
        if assigned.time_class not in named:
            errors.append(
                f"{SLA_FILE}: hotline.assign.{n}.time_class: unknown time class "
                f"{assigned.time_class} (known: {', '.join(sorted(named))})"
            )
        if m.code is not None and m.kind is None:
            errors.append(f"{SLA_FILE}: hotline.assign.{n}: a class code needs its kind")
        elif m.code is not None and (m.kind, m.code) not in classes:
            errors.append(f"{SLA_FILE}: hotline.assign.{n}: unknown {m.kind} class {m.code}")
    return errors
