"""The simulated city's behaviour: who reports what where, how departments, supervisors,
the command centre and residents answer. Pure and seeded: the same seed, pack and report
number give the same draws, whatever order the asynchronous driver makes them in (each draw
has its own stream, named by the seed, the report number and what it is for).

Durations are simulated time; the driver sleeps them divided by the speed.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, cast

from gridloop.citypack import CityPack
from gridloop.citypack.model import EventClass, Grid
from schemas.events import Channel, Kind

# Event majors (事件大类) by how often cities see them: 市容环境 city appearance and 街面秩序
# street order lead, emergencies are rare. A major not listed weighs 1.
EVENT_MAJOR_WEIGHTS = {"01": 6.0, "05": 4.0, "03": 1.5, "02": 1.5, "04": 0.3}
SUPERVISOR_OF_NO_GRID = "SIM-SUP-0"  # checks the grids nobody patrols
Action = Literal["handle", "return", "extend"]
Role = Literal["grid_manager", "supervisor"]


@dataclass(frozen=True)
class Mix:
    """Shares of reports: by channel, and events (事件) against components (部件)."""

    supervisor: float = 0.70  # most cases are found by supervisors on patrol
    hotline: float = 0.20
    website: float = 0.10
    events: float = 0.60
    # A supervisor reporting a component names its coded instance (16/17 digits).
    by_component_id: float = 0.8


@dataclass(frozen=True)
class Behaviour:
    """How the people in the loop answer: medians of lognormal delays and shares."""

    verify_median: timedelta = timedelta(minutes=20)  # a supervisor reaches the spot
    refute_share: float = 0.05  # citizen reports the supervisor finds untrue (voided)
    acknowledge_median: timedelta = timedelta(minutes=10)  # 签收
    handle_median: timedelta = timedelta(hours=2)  # a crew fixes the problem
    late_share: float = 0.10  # handled after the deadline (cases due within `late_within`)
    late_within: timedelta = timedelta(days=1)
    return_share: float = 0.04  # 回退: not this department's
    extension_share: float = 0.05  # 延期 asked
    extension_denied_share: float = 0.2
    decision_median: timedelta = timedelta(minutes=15)  # the command centre decides
    check_median: timedelta = timedelta(minutes=45)  # 核查 on site
    check_fail_share: float = 0.08  # → rework
    # Residents: who rates a closed case, how (1…5), how soon. Supervisors' cases are rated
    # by the hotline's follow-up calls (回访) to the people living there.
    feedback_share: dict[Channel, float] = field(
        default_factory=lambda: {
            Channel.website: 0.6,
            Channel.hotline: 0.7,
            Channel.supervisor: 0.2,
        }
    )
    ratings: tuple[float, float, float, float, float] = (0.04, 0.06, 0.10, 0.25, 0.55)
    feedback_median: timedelta = timedelta(hours=2)
    # 回访: the hotline calls back every hotline reporter after the closure; a call reaches
    # nobody this often, and the next try comes this much later.
    callback_unreached_share: float = 0.25
    callback_retry: timedelta = timedelta(hours=3)
    spread: float = 0.8  # sigma of the lognormal delays


FindingType = Literal["dispute", "need", "suggestion", "safety_hazard", "fire_hazard", "sanitation"]
DisputeOutcome = Literal["grid", "escalate", "overdue"]
# What a visit's findings may become: hazards and sanitation a case of the catalogue.
CASE_FINDINGS = frozenset({"safety_hazard", "fire_hazard", "sanitation"})


@dataclass(frozen=True)
class GridWork:
    """The grid's people (issue 17) in the grids they are out in today: patrols (巡查) of
    the grid manager and the supervisor, the grid manager's household visits (走访), the
    disputes (矛盾纠纷) those raise, mediated by the tiers, and fixes on the spot (自处置)."""

    grids: int = 12  # grids whose people are out today (every grid, when the pack has fewer)
    start_median: timedelta = timedelta(minutes=15)  # clock-in after the day begins
    shift: timedelta = timedelta(hours=8)  # clock-in to clock-out
    track_pieces: int = 3  # pieces of the track uploaded during a shift
    fixes_per_piece: int = 4  # GPS fixes in a piece
    visits: int = 2  # a grid manager's visits in a shift
    doors: tuple[int, int] = (1, 4)  # households a visit calls at (at least, at most)
    # Findings of a visit (民情): 0–2; "none" weighs a visit where nobody raised anything.
    findings: dict[str, float] = field(
        default_factory=lambda: {
            "none": 0.35,
            "need": 0.15,
            "suggestion": 0.10,
            "safety_hazard": 0.08,
            "fire_hazard": 0.05,
            "sanitation": 0.12,
            "dispute": 0.15,
        }
    )
    case_share: float = 0.5  # hazards and sanitation findings made a case
    # Disputes: closed at the grid with the parties' confirmation; escalated as beyond its
    # authority (closed by the community); the rest left to the grid's limit (up on the
    # breach; the grid explains; the community closes). Only played where the grid's limit
    # falls within `overdue_within` (a demo day never reaches a 3-day limit).
    dispute_at_grid: float = 0.5
    dispute_beyond_authority: float = 0.35
    overdue_within: timedelta = timedelta(hours=12)
    unconfirmed_share: float = 0.1  # parties who do not confirm: the tier records why
    mediate_median: timedelta = timedelta(hours=1)
    self_handling_share: float = 0.5  # of the people out, those who fix a problem on the spot


@dataclass(frozen=True)
class Profile:
    seed: int = 1
    mix: Mix = field(default_factory=Mix)
    behaviour: Behaviour = field(default_factory=Behaviour)
    grid_work: GridWork = field(default_factory=GridWork)


@dataclass(frozen=True)
class PlannedReport:
    """One report as a client will submit it (the body of `POST /reports`)."""

    n: int
    channel: Channel
    kind: Kind
    class_code: str
    grid_code: str
    supervisor: str  # who patrols the grid: reports, verifies, checks
    point: tuple[float, float] | None = None
    component_id: str | None = None

    def body(self, class_name: str) -> dict[str, object]:
        body: dict[str, object] = {
            "channel": self.channel.value,
            "description": f"{class_name} (simulated report {self.n})",
        }
        if self.component_id:
            body["component_id"] = self.component_id
        else:
            assert self.point is not None
            lon, lat = self.point
            body |= {
                "kind": self.kind,
                "class_code": self.class_code,
                "point": {"lon": lon, "lat": lat},
            }
        if self.channel is not Channel.supervisor:
            body["reporter"] = {"name": f"居民{self.n}", "phone": f"139{self.n % 10**8:08d}"}
        return body


@dataclass(frozen=True)
class DepartmentPlan:
    """What a department does with one dispatch: when it acknowledges, then handles (after
    `handle_after`), returns the case, or asks for an extension first."""

    action: Action
    acknowledge_after: timedelta
    handle_after: timedelta
    late: bool = False
    extension_denied: bool = False


@dataclass(frozen=True)
class CallbackPlan:
    """A callback (回访): the first call after `delay`, `unreached` calls that reach nobody
    (`retry` apart), then the resident's `rating` (None: never reached, the callback is
    invalid)."""

    delay: timedelta
    unreached: int
    retry: timedelta
    rating: int | None

    @property
    def answers(self) -> dict[str, object]:
        """The resident's answers as the hotline records them, from the rating."""
        assert self.rating is not None
        satisfaction = {5: "satisfied", 4: "satisfied", 3: "basically_satisfied"}
        return {
            "contacted": self.rating > 1,
            "solved": self.rating >= 3,
            "satisfaction": satisfaction.get(self.rating, "dissatisfied"),
            "comment": f"simulated callback {self.rating}",
        }


@dataclass(frozen=True)
class PatrolPlan:
    """A person's patrol of one grid: the clock-in after the day begins, the pieces of the
    track (each `at` after the clock-in, its fixes inside the grid), the clock-out."""

    staff: str
    role: Role
    grid_code: str
    clock_in: timedelta
    pieces: tuple[tuple[timedelta, tuple[tuple[float, float], ...]], ...]
    clock_out: timedelta
    start: tuple[float, float]
    end: tuple[float, float]


@dataclass(frozen=True)
class FindingPlan:
    type: FindingType
    household: int  # index into the visit's doors
    report: bool  # made a case (a dispute, for a dispute)
    class_code: str | None  # the case's class (the dispute type, for a dispute)
    point: tuple[float, float]


@dataclass(frozen=True)
class VisitPlan:
    """A grid manager's visit: when (after the clock-in), how many doors, what was found."""

    after: timedelta
    doors: int
    findings: tuple[FindingPlan, ...]


@dataclass(frozen=True)
class DisputePlan:
    """How the tiers handle a dispute: closed at the grid, escalated as beyond its
    authority, or left to the grid's limit; after how long; whether the parties confirm."""

    outcome: DisputeOutcome
    mediate_after: timedelta
    confirmed: bool


@dataclass(frozen=True)
class SelfHandlingPlan:
    """A fix on the spot (自处置): when after the clock-in, which class, where."""

    after: timedelta
    class_code: str
    point: tuple[float, float]


def _lognormal(rng: random.Random, median: timedelta, sigma: float) -> timedelta:
    return median * rng.lognormvariate(0.0, sigma)


class Scenario:
    """The profile applied to one city pack: draws reports and answers."""

    def __init__(self, pack: CityPack, profile: Profile) -> None:
        self.pack, self.profile = pack, profile
        self.grids: list[Grid] = list(pack.grids)
        instances: dict[str, list[str]] = defaultdict(list)
        for component in pack.components.values():
            if component.status != "removed":
                instances[component.class_code].append(component.id)
        self.instances = {code: sorted(ids) for code, ids in instances.items()}
        counts = Counter({code: len(ids) for code, ids in self.instances.items()})
        classes = sorted(pack.classes.values(), key=lambda c: (c.kind, c.code))
        self.events = [c for c in classes if c.kind == "event"]
        self.components = [c for c in classes if c.kind == "component"]
        self.event_weights = [EVENT_MAJOR_WEIGHTS.get(c.major, 1.0) for c in self.events]
        # Components are reported in proportion to how many the city has (1 if none coded).
        self.component_weights = [max(counts[c.code], 1) for c in self.components]

    def rng(self, n: int, purpose: str) -> random.Random:
        """The stream of one draw: independent of the order draws are made in."""
        return random.Random(f"{self.profile.seed}:{n}:{purpose}")

    # --- reports --------------------------------------------------------------------------

    def report(self, n: int) -> PlannedReport:
        rng, mix = self.rng(n, "report"), self.profile.mix
        channel = rng.choices(
            (Channel.supervisor, Channel.hotline, Channel.website),
            (mix.supervisor, mix.hotline, mix.website),
        )[0]
        cls = self._class(rng)
        ids = self.instances.get(cls.code, []) if cls.kind == "component" else []
        if ids and channel is Channel.supervisor and rng.random() < mix.by_component_id:
            component = self.pack.components[rng.choice(ids)]
            grid = self.pack.grid_by_code[component.grid]
            return PlannedReport(
                n,
                channel,
                cls.kind,
                cls.code,
                grid.code,
                self._supervisor(grid),
                None,
                component.id,
            )
        grid = rng.choice(self.grids)
        point = self.point_in(grid, rng)
        return PlannedReport(
            n, channel, cls.kind, cls.code, grid.code, self._supervisor(grid), point
        )

    def _class(self, rng: random.Random) -> EventClass:
        events = self.events and (not self.components or rng.random() < self.profile.mix.events)
        if events:
            return rng.choices(self.events, self.event_weights)[0]
        return rng.choices(self.components, self.component_weights)[0]

    @staticmethod
    def _supervisor(grid: Grid) -> str:
        return grid.supervisor or SUPERVISOR_OF_NO_GRID

    def supervisor_of(self, grid: Grid) -> str:
        """Who verifies and checks the grid's cases."""
        return self._supervisor(grid)

    def point_in(self, grid: Grid, rng: random.Random) -> tuple[float, float]:
        """A point inside the grid (not on its edge, which a neighbour may share)."""
        from shapely.geometry import Point

        polygon = self.pack.polygon(grid.code)
        west, south, east, north = polygon.bounds
        for _ in range(50):
            lon, lat = rng.uniform(west, east), rng.uniform(south, north)
            if polygon.contains(Point(lon, lat)) and self.pack.locate(lon, lat) == grid:
                return round(lon, 7), round(lat, 7)
        inside = polygon.representative_point()
        return inside.x, inside.y

    # --- answers ----------------------------------------------------------------------------

    def delay(self, n: int, purpose: str, median: timedelta) -> timedelta:
        return _lognormal(self.rng(n, purpose), median, self.profile.behaviour.spread)

    def verification(self, n: int) -> tuple[timedelta, bool]:
        """When the supervisor verifies a citizen report, and whether it is confirmed."""
        b = self.profile.behaviour
        confirmed = self.rng(n, "refute").random() >= b.refute_share
        return self.delay(n, "verify", b.verify_median), confirmed

    def department(self, n: int, round_: int, allowed: timedelta) -> DepartmentPlan:
        """What the department does with the case's `round_`-th dispatch, which gives it
        `allowed` until the deadline. Only a first dispatch is returned or extended; a
        department is late only on cases due within `late_within` (the short limits), and
        otherwise handles within the deadline."""
        b = self.profile.behaviour
        rng = self.rng(n, f"department:{round_}")
        acknowledge = _lognormal(rng, b.acknowledge_median, b.spread)
        draw = rng.random()
        action: Action = "handle"
        if round_ == 1 and draw < b.return_share:
            action = "return"
        elif round_ == 1 and draw < b.return_share + b.extension_share:
            action = "extend"
        late = action == "handle" and allowed <= b.late_within and rng.random() < b.late_share
        work = _lognormal(rng, b.handle_median, b.spread)
        denied = action == "extend" and rng.random() < b.extension_denied_share
        if late or action == "extend":
            # Beyond the deadline: an extension (when granted) makes it on time again.
            handle = allowed * rng.uniform(1.05, 1.5)
        else:
            handle = min(max(work, acknowledge), allowed * 0.95)
        late = late or denied
        return DepartmentPlan(action, min(acknowledge, handle), handle, late, denied)

    def check(self, n: int, round_: int) -> tuple[timedelta, bool]:
        """When the supervisor checks the handled case on site, and whether it passes."""
        b = self.profile.behaviour
        passed = self.rng(n, f"check-pass:{round_}").random() >= b.check_fail_share
        return self.delay(n, f"check:{round_}", b.check_median), passed

    def feedback(self, n: int, channel: Channel) -> tuple[timedelta, int] | None:
        """Whether a resident rates the closed case: when, and the rating (1…5)."""
        b = self.profile.behaviour
        rng = self.rng(n, "feedback")
        if rng.random() >= b.feedback_share.get(channel, 0.0):
            return None
        rating = rng.choices((1, 2, 3, 4, 5), b.ratings)[0]
        return _lognormal(rng, b.feedback_median, b.spread), rating

    def callback(self, n: int, tries: int) -> CallbackPlan:
        """The hotline's callback of case `n` (回访): when, how many calls reach nobody
        (at most the city's `tries`: then the callback is invalid), and the resident's
        rating (1…5) when one is reached."""
        b = self.profile.behaviour
        rng = self.rng(n, "callback")
        unreached = 0
        while unreached < tries and rng.random() < b.callback_unreached_share:
            unreached += 1
        rating = None if unreached == tries else rng.choices((1, 2, 3, 4, 5), b.ratings)[0]
        delay = _lognormal(rng, b.feedback_median, b.spread)
        return CallbackPlan(delay, unreached, b.callback_retry, rating)

    def decision(self, n: int, purpose: str) -> timedelta:
        return self.delay(n, f"decision:{purpose}", self.profile.behaviour.decision_median)

    def arrivals(self, rate: float, duration: float) -> list[float]:
        """Real seconds from the start at which reports are sent: a Poisson process."""
        rng, at = random.Random(f"{self.profile.seed}:arrivals"), 0.0
        times: list[float] = []
        while True:
            at += rng.expovariate(rate)
            if at >= duration:
                return times
            times.append(at)

    # --- the grid's people (issue 17) -------------------------------------------------------

    def field_grids(self) -> list[Grid]:
        """The grids whose people are out today, drawn once from the seed."""
        count = min(self.profile.grid_work.grids, len(self.grids))
        drawn = random.Random(f"{self.profile.seed}:field").sample(self.grids, count)
        return sorted(drawn, key=lambda g: g.code)

    def grid_manager(self, grid: Grid) -> str | None:
        """The grid manager (网格管理员) the pack's staff register puts on the grid."""
        managers = [p.id for p in self.pack.staff_of(grid.code) if p.role == "grid_manager"]
        return managers[0] if managers else None

    def patrollers(self, grids: Sequence[Grid]) -> list[tuple[str, Role, Grid]]:
        """Who patrols today: each grid's manager in it, and each supervisor on the register
        once, in the first of their grids out today (one open patrol a person)."""
        out: list[tuple[str, Role, Grid]] = []
        supervisors: set[str] = set()
        registered = {p.id for p in self.pack.staff.people.values() if p.role == "supervisor"}
        for grid in grids:
            manager = self.grid_manager(grid)
            if manager:
                out.append((manager, "grid_manager", grid))
            sup = grid.supervisor
            if sup and sup in registered and sup not in supervisors:
                supervisors.add(sup)
                out.append((sup, "supervisor", grid))
        return out

    def patrol(self, staff: str, role: Role, grid: Grid) -> PatrolPlan:
        """A shift's patrol: clock-in, the pieces of the track spread over the shift (times
        after the clock-in), the clock-out; every point inside the grid."""
        w, rng = self.profile.grid_work, self.rng(0, f"patrol:{staff}")
        clock_in = _lognormal(rng, w.start_median, self.profile.behaviour.spread)
        pieces = tuple(
            (
                w.shift * (i + 1) / (w.track_pieces + 1),
                tuple(self.point_in(grid, rng) for _ in range(w.fixes_per_piece)),
            )
            for i in range(w.track_pieces)
        )
        start, end = self.point_in(grid, rng), self.point_in(grid, rng)
        return PatrolPlan(staff, role, grid.code, clock_in, pieces, w.shift, start, end)

    def visits(self, grid: Grid) -> list[VisitPlan]:
        """The grid manager's visits of the shift (times after the clock-in)."""
        w = self.profile.grid_work
        kinds, weights = list(w.findings), list(w.findings.values())
        plans: list[VisitPlan] = []
        for k in range(w.visits):
            rng = self.rng(0, f"visit:{grid.code}:{k}")
            after = min(w.shift * ((k + 0.5) / w.visits) * rng.uniform(0.8, 1.2), w.shift * 0.95)
            doors = rng.randint(*w.doors)
            drawn = (rng.choices(kinds, weights)[0] for _ in range(2))
            findings = tuple(
                self._finding(rng, cast(FindingType, kind), doors, grid)
                for kind in drawn
                if kind != "none"
            )
            plans.append(VisitPlan(after, doors, findings))
        return plans

    def _finding(
        self, rng: random.Random, kind: FindingType, doors: int, grid: Grid
    ) -> FindingPlan:
        disputes = self.pack.sla.disputes
        code: str | None = None
        if kind == "dispute" and disputes is not None:
            code = rng.choice(sorted(disputes.types))
        elif (
            kind in CASE_FINDINGS
            and self.events
            and rng.random() < self.profile.grid_work.case_share
        ):
            code = rng.choices(self.events, self.event_weights)[0].code
        point = self.point_in(grid, rng)
        return FindingPlan(kind, rng.randrange(doors), code is not None, code, point)

    def dispute(self, key: str) -> DisputePlan:
        """How the tiers handle the dispute `key`: the grid closes it, escalates it as
        beyond its authority, or lets its limit pass (only where that limit is within
        `overdue_within`; else it escalates). Mediation ends well within the grid's limit."""
        w, rng = self.profile.grid_work, self.rng(0, f"dispute:{key}")
        ladder = self.pack.sla.disputes
        limit = (ladder.limit("grid") if ladder else None) or w.overdue_within
        draw = rng.random()
        outcome: DisputeOutcome = "grid"
        if draw >= w.dispute_at_grid + w.dispute_beyond_authority and limit <= w.overdue_within:
            outcome = "overdue"
        elif draw >= w.dispute_at_grid:
            outcome = "escalate"
        after = min(_lognormal(rng, w.mediate_median, self.profile.behaviour.spread), limit * 0.4)
        return DisputePlan(outcome, after, rng.random() >= w.unconfirmed_share)

    def self_handling(self, staff: str, grid: Grid) -> SelfHandlingPlan | None:
        """Whether `staff` fixes a minor problem of a class the pack allows (自处置) during
        the shift: when, which, where."""
        w, rng = self.profile.grid_work, self.rng(0, f"self-handling:{staff}")
        allowed = [c for c in self.events if c.self_handling]
        if not allowed or rng.random() >= w.self_handling_share:
            return None
        cls = rng.choice(allowed)
        return SelfHandlingPlan(w.shift * rng.uniform(0.2, 0.8), cls.code, self.point_in(grid, rng))

    def redirect(self, department: str, plan: PlannedReport) -> str:
        """Where the command centre sends a returned case: the class's owner, else the
        street office of its grid (属地兜底), else any other department."""
        owner = self.pack.classes[(plan.kind, plan.class_code)].owner
        office = self.pack.streets.get(plan.grid_code[6:9])
        for candidate in (owner, office.office if office else None):
            if candidate and candidate != department and candidate in self.pack.departments:
                return candidate
        others = sorted(set(self.pack.departments) - {department})
        return others[0] if others else department


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (NaN for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]
