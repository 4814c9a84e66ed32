"""The monthly report's data (月度分析报告): pure, from case documents, scores and the pack.

A case belongs to the month it was reported in, in the city's time. Case documents are the
`cases` projections (services/projections/core.py); the reader (collect.py) leaves out the
reporter, the description and the media, so nothing here can carry personal data.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from gridloop.citypack import CityPack
from gridloop.citypack.model import EventClass
from gridloop.lifecycle import OPEN_STATES, State
from gridloop.nearby import box_around, keys_around, keys_of, metres
from gridloop.scoring import Indicator, Ratio, Score
from schemas.events import Kind
from services.evaluation.hotline import Ranked, ranking
from services.evaluation.report.demand import Demand, VisitFinding, analyse

Case = dict[str, Any]
PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")  # whole: use fullmatch
KM_PER_DEGREE = 111.32  # along a meridian; along a parallel it shrinks by cos(latitude)
OTHERS = "others"  # the code of the classes past the top ones, summed


@dataclass(frozen=True)
class Period:
    """A calendar month in the city's time zone: [start, end)."""

    label: str  # "2026-11"
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, text: str, timezone: str) -> Period:
        match = PERIOD.fullmatch(text)
        if not match:
            raise ValueError(f"period must be a month written YYYY-MM, e.g. 2026-11; got {text!r}")
        year, month = int(match[1]), int(match[2])
        tz = ZoneInfo(timezone)
        start = datetime(year, month, 1, tzinfo=tz)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
        return cls(text, start, end)

    def previous(self) -> Period:
        """The month before, in the same time zone."""
        start = self.start.replace(day=1)
        year, month = (start.year, start.month - 1) if start.month > 1 else (start.year - 1, 12)
        return Period.parse(f"{year:04d}-{month:02d}", str(start.tzinfo))


def latin(name: str, fallback: str) -> str:
    """The Latin part of a bilingual name ("东华门街道 Donghuamen" → "Donghuamen"): charts'
    fonts have no CJK glyphs."""
    text = " ".join("".join(c if c.isascii() else " " for c in name).split())
    return text or fallback


@dataclass(frozen=True)
class Volume:
    """How many cases of one class or street, and how many of them are closed."""

    code: str
    name: str
    label: str  # for charts: the name (charts.py keeps its Latin part without a CJK font)
    cases: int
    closed: int


@dataclass(frozen=True)
class GridDensity:
    code: str
    name: str
    cases: int
    area_km2: float

    @property
    def per_km2(self) -> float:
        return self.cases / self.area_km2 if self.area_km2 else 0.0


@dataclass(frozen=True)
class Hotspot:
    """A square of about `HOTSPOT_CELL_M` where many cases were reported."""

    lon: float  # the centre of the square
    lat: float
    grid_code: str  # the grid most of its cases are in
    cases: int
    top_class: str  # the most reported class there ("event 0201")
    class_name: str = ""  # its name in the pack
    street: str = ""  # the names of the grid's street and community
    community: str = ""
    grid_name: str = ""


@dataclass(frozen=True)
class RepeatedComponent:
    """A coded component (部件) that several cases reported: it failed repeatedly."""

    component_id: str
    name: str
    class_code: str
    grid_code: str
    case_ids: tuple[str, ...]


@dataclass(frozen=True)
class OnTime:
    """A department's on-time rates (按期处置率, 按期结案率) from its score of the month:
    the very figures the scores API explains case by case."""

    code: str
    name: str
    handling: Ratio | None
    closure: Ratio | None


@dataclass(frozen=True)
class LeagueRow:
    rank: int
    code: str
    name: str
    cases: int
    score: float | None
    grade: str | None
    on_time_handling: float | None
    closure: float | None


@dataclass(frozen=True)
class Overdue:
    case_id: str
    class_key: str
    street: str
    department: str
    deadline: datetime
    hours_over: float
    still_open: bool
    class_name: str = ""
    street_name: str = ""
    department_name: str = ""


@dataclass(frozen=True)
class Escalated:
    """A case the SLA engine escalated up the ladder (升级): the highest tier it reached."""

    case_id: str
    class_name: str
    street: str
    department: str
    stage: str
    tier: str
    still_open: bool


@dataclass(frozen=True)
class RepeatedPlace:
    """One class reported again and again at one spot (重复发生): the cases within the
    class's duplicate radius of the one they gather around."""

    class_key: str
    class_name: str
    lon: float
    lat: float
    street: str
    community: str
    radius_m: float
    case_ids: tuple[str, ...]
    first: datetime
    last: datetime
    still_open: int


@dataclass(frozen=True)
class Change:
    """A figure of the month beside the month before (环比)."""

    name: str
    this: float | None
    last: float | None
    rate: bool = False  # a ratio: shown in per cent, its change in percentage points

    @property
    def change(self) -> float | None:
        if self.this is None or self.last is None:
            return None
        return self.this - self.last


@dataclass(frozen=True)
class RatesRow:
    """A department's or a street's three rates (三率) of the month."""

    level: str
    code: str
    name: str
    rates: dict[Indicator, Ratio]


# The three rates (三率: 响应率, 解决率, 满意率), taken from the callbacks to residents (回访,
# services/evaluation/hotline.py). The report's "three rates" section (model `three_rates`,
# tables.py `sections`, the template) appears only when a department or street score of
# the month carries one, with the hotline's ranking of the month beside it.
THREE_RATES: tuple[Indicator, ...] = (
    Indicator.callback_response,
    Indicator.callback_resolution,
    Indicator.callback_satisfaction,
)


@dataclass(frozen=True)
class Report:
    city: str
    district: str
    period: Period
    as_of: datetime
    cases: int
    closed: int
    by_class: list[Volume]
    by_street: list[Volume]
    by_channel: dict[str, int]
    grids: list[GridDensity]
    hotspots: list[Hotspot]
    repeated: list[RepeatedComponent]
    on_time: list[OnTime]
    departments: list[LeagueRow]
    streets: list[LeagueRow]
    overdue: list[Overdue]
    last_period: Period | None = None
    summary: list[Change] = field(default_factory=list)  # the month against the month before
    top_classes: list[Volume] = field(default_factory=list)
    places: list[RepeatedPlace] = field(default_factory=list)
    escalated: list[Escalated] = field(default_factory=list)
    three_rates: list[RatesRow] = field(default_factory=list)  # see THREE_RATES
    # 民情分析 (issue 17, demand.py): what residents raised by type against the month
    # before, the disputes unresolved and where they sit, what visits found. The section is
    # shown when it has any of them.
    demand: Demand = field(default_factory=Demand)
    cases_overdue: int = 0
    cases_escalated: int = 0
    # The hotline's rankings (12345 三率: response, resolution, satisfaction by callback).
    hotline: dict[str, list[Ranked]] = field(default_factory=dict)  # level → ranking
    # Consultations answered directly from the knowledge base (直接答复), by street code:
    # closed without filing or dispatch, so counted apart (the district's is the sum).
    answered_directly: dict[str, int] = field(default_factory=dict)


def class_key(case: Case) -> str:
    return f"{case.get('kind') or '?'} {case.get('class_code') or '?'}"


def street_of(case: Case) -> str:
    return str(case.get("grid_code") or "")[6:9] or "?"


def is_closed(case: Case) -> bool:
    return case.get("state") not in OPEN_STATES


def _volumes(cases: Sequence[Case], key: Any, names: dict[str, tuple[str, str]]) -> list[Volume]:
    """Counts by `key(case)`, most first; names[code] = (name, chart label)."""
    total: Counter[str] = Counter(key(c) for c in cases)
    closed: Counter[str] = Counter(key(c) for c in cases if is_closed(c))
    return [
        Volume(code, *names.get(code, (code, code)), total[code], closed[code])
        for code, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def class_name(pack: CityPack, key: str) -> str:
    """A class's name from the pack ("上水井盖 water manhole cover"), else its key."""
    known = _class(pack, key)
    return known.name if known else key


def _class(pack: CityPack, key: str) -> EventClass | None:
    """The pack's class of a key "event 0101" (a key of an unknown kind is no class)."""
    kind, _, code = key.partition(" ")
    return pack.classes.get((cast(Kind, kind), code))


def street_name(pack: CityPack, code: str) -> str:
    known = pack.streets.get(code)
    return known.name if known else code


def community_name(pack: CityPack, code: str) -> str:
    return next((c.name for c in pack.city.communities if c.code == code), code)


def department_name(pack: CityPack, code: str) -> str:
    known = pack.departments.get(code)
    return known.name if known else code


def by_class(cases: Sequence[Case], pack: CityPack) -> list[Volume]:
    names = {f"{k} {c}": (cls.name, cls.name) for (k, c), cls in pack.classes.items()}
    return _volumes(cases, class_key, names)


def top_classes(volumes: Sequence[Volume], top: int = 10) -> list[Volume]:
    """The `top` classes with the most cases, the rest summed as one "others" row."""
    shown, rest = list(volumes[:top]), volumes[top:]
    if rest:
        others = "其他 others"
        shown.append(
            Volume(
                OTHERS,
                others,
                others,
                sum(v.cases for v in rest),
                sum(v.closed for v in rest),
            )
        )
    return shown


def by_street(cases: Sequence[Case], pack: CityPack) -> list[Volume]:
    names = {code: (s.name, s.name) for code, s in pack.streets.items()}
    return _volumes(cases, street_of, names)


def area_km2(pack: CityPack, grid_code: str) -> float:
    """A grid's area: degrees squared scaled at its latitude (grids are a few hundred
    metres across, so the flat-earth error is far below a rounding)."""
    polygon = pack.polygon(grid_code)
    scale = KM_PER_DEGREE**2 * math.cos(math.radians(polygon.centroid.y))
    return float(polygon.area) * scale


def grid_density(cases: Sequence[Case], pack: CityPack) -> list[GridDensity]:
    """Every grid of the pack, those without cases too (a map needs them all)."""
    counts = Counter(c.get("grid_code") for c in cases)
    return [
        GridDensity(g.code, g.name or g.code, counts[g.code], area_km2(pack, g.code))
        for g in pack.grids
    ]


HOTSPOT_CELL_M = 100.0
STEP_LAT = HOTSPOT_CELL_M / 1000 / KM_PER_DEGREE


def _step_lon(row: int) -> float:
    """A cell's width in degrees of longitude: as wide in metres as it is high, in its row."""
    return STEP_LAT / math.cos(math.radians((row + 0.5) * STEP_LAT))


def _spot(spot: Hotspot, pack: CityPack) -> Hotspot:
    """The hotspot with the names of its class, grid, community and street."""
    grid = pack.grid_by_code.get(spot.grid_code)
    return Hotspot(
        spot.lon,
        spot.lat,
        spot.grid_code,
        spot.cases,
        spot.top_class,
        class_name(pack, spot.top_class),
        street_name(pack, spot.grid_code[6:9]),
        community_name(pack, grid.community) if grid else "",
        (grid.name or grid.code) if grid else spot.grid_code,
    )


def hotspots(cases: Sequence[Case], pack: CityPack, top: int = 10, least: int = 3) -> list[Hotspot]:
    """The squares of about 100 m with the most cases (at least `least`), named."""
    return [_spot(h, pack) for h in _hotspots(cases, top, least)]


def _hotspots(cases: Sequence[Case], top: int, least: int) -> list[Hotspot]:
    cells: dict[tuple[int, int], list[Case]] = defaultdict(list)
    for case in cases:
        if point := case.get("point"):
            lon, lat = point["coordinates"]
            row = math.floor(lat / STEP_LAT)
            cells[(math.floor(lon / _step_lon(row)), row)].append(case)
    found = [
        Hotspot(
            round((x + 0.5) * _step_lon(row), 6),
            round((row + 0.5) * STEP_LAT, 6),
            Counter(str(c.get("grid_code")) for c in members).most_common(1)[0][0],
            len(members),
            Counter(class_key(c) for c in members).most_common(1)[0][0],
        )
        for (x, row), members in cells.items()
        if len(members) >= least
    ]
    return sorted(found, key=lambda h: (-h.cases, h.grid_code, h.lon, h.lat))[:top]


def repeated_components(
    cases: Sequence[Case], pack: CityPack, least: int = 2
) -> list[RepeatedComponent]:
    """Components reported by `least` cases or more, most first."""
    seen: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        if component_id := case.get("component_id"):
            seen[component_id].append(case)
    found = []
    for component_id, members in seen.items():
        if len(members) < least:
            continue
        known = pack.component(component_id)
        found.append(
            RepeatedComponent(
                component_id,
                known.name if known else "",
                known.class_code if known else str(members[0].get("class_code") or ""),
                known.grid if known else str(members[0].get("grid_code") or ""),
                tuple(sorted(c["_id"] for c in members)),
            )
        )
    return sorted(found, key=lambda r: (-len(r.case_ids), r.component_id))


def last_handled(case: Case) -> datetime | None:
    times = [e["at"] for e in case.get("timeline") or () if e.get("type") == "handled"]
    return max(times) if times else None


def overdue_by(case: Case, as_of: datetime) -> timedelta | None:
    """How late the case was handled, or is now if still unhandled; None if not late."""
    deadline = case.get("deadline")
    if deadline is None:
        return None
    handled = last_handled(case)
    if handled is None and case.get("state") not in ("dispatched", "parked"):
        return None  # never reached a department, or left the loop (voided, merged)
    if case.get("state") == "parked" and case.get("parked_at") is not None:
        as_of = case["parked_at"]  # its clock stands still: as late as when it was parked
    late = (handled or as_of) - deadline
    return late if late > timedelta(0) else None


def on_time(departments: Iterable[Score]) -> list[OnTime]:
    """The departments' on-time rates, by code."""
    return [
        OnTime(
            s.entity,
            s.name,
            s.indicators.get(Indicator.on_time_handling),
            s.indicators.get(Indicator.on_time_closure),
        )
        for s in sorted(departments, key=lambda s: s.entity)
    ]


def overdue(
    cases: Sequence[Case], pack: CityPack, as_of: datetime, top: int | None = None
) -> list[Overdue]:
    """The overdue cases, the latest first (the first `top`, or all)."""
    late = [(case, by) for case in cases if (by := overdue_by(case, as_of)) is not None]
    late.sort(key=lambda cb: (-cb[1], cb[0]["_id"]))
    return [
        Overdue(
            str(case.get("case_number") or case["_id"]),
            class_key(case),
            street_of(case),
            str(case.get("department") or ""),
            case["deadline"],
            round(by.total_seconds() / 3600, 1),
            last_handled(case) is None,
            class_name(pack, class_key(case)),
            street_name(pack, street_of(case)),
            department_name(pack, str(case.get("department") or "")),
        )
        for case, by in late[:top]
    ]


TIERS = ("community", "street", "district", "city")  # the escalation ladder, bottom up


def escalation(case: Case) -> tuple[str, str] | None:
    """(stage, tier): the highest tier any stage of the case was escalated to."""
    found = [
        (TIERS.index(clock["tier"]), stage, clock["tier"])
        for stage, clock in (case.get("sla") or {}).items()
        if isinstance(clock, dict) and clock.get("tier") in TIERS
    ]
    if not found:
        return None
    _, stage, tier = max(found)
    return stage, tier


def escalated(cases: Sequence[Case], pack: CityPack, top: int | None = None) -> list[Escalated]:
    """Escalated cases, the highest tier first, then the open ones, then by id."""
    found = [(case, up) for case in cases if (up := escalation(case)) is not None]
    found.sort(key=lambda cu: (-TIERS.index(cu[1][1]), is_closed(cu[0]), cu[0]["_id"]))
    return [
        Escalated(
            str(case.get("case_number") or case["_id"]),
            class_name(pack, class_key(case)),
            street_name(pack, street_of(case)),
            department_name(pack, str(case.get("department") or "")),
            stage,
            tier,
            not is_closed(case),
        )
        for case, (stage, tier) in found[:top]
    ]


def _point(case: Case) -> tuple[float, float] | None:
    point = case.get("point")
    if not point:
        return None
    lon, lat = point["coordinates"]
    return float(lon), float(lat)


def _neighbours(members: Sequence[Case], kind: str, code: str, radius: float) -> list[set[int]]:
    """For each case, the cases (itself included) within `radius` metres of it: found as
    the duplicate search finds them (gridloop/nearby.py keys), then by distance."""
    points = [_point(c) or (0.0, 0.0) for c in members]
    cells: dict[str, list[int]] = defaultdict(list)
    for i, (lon, lat) in enumerate(points):
        for key in keys_of(kind, code, lon, lat):
            cells[key].append(i)
    around = []
    for lon, lat in points:
        keys = keys_around(kind, code, box_around(lon, lat, radius))
        seen = {j for key in keys for j in cells.get(key, ())}
        around.append({j for j in seen if metres(lon, lat, *points[j]) <= radius})
    return around


def repeated_places(
    cases: Sequence[Case], pack: CityPack, least: int = 3, top: int | None = None
) -> list[RepeatedPlace]:
    """Places where one class was reported `least` times or more (voided reports left out):
    each class's cases within its duplicate radius of one of them, the case with the most
    such neighbours taken first, each case in one place at most; the most reported first
    (the first `top`, or all)."""
    groups: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        if _point(case) is not None and case.get("state") != "voided":
            groups[class_key(case)].append(case)
    found = []
    for key, members in groups.items():
        kind, _, code = key.partition(" ")
        known = _class(pack, key)
        radius = known.duplicate_radius_m if known else 50.0
        around = _neighbours(members, kind, code, radius)
        taken: set[int] = set()
        for i in sorted(range(len(members)), key=lambda i: (-len(around[i]), members[i]["_id"])):
            group = around[i] - taken
            if i in taken or len(group) < least:
                continue
            taken |= group
            found.append(_place(pack, key, radius, members[i], [members[j] for j in group]))
    found.sort(key=lambda p: (-len(p.case_ids), p.class_key, p.lon, p.lat))
    return found[:top]


def _place(
    pack: CityPack, key: str, radius: float, centre: Case, members: list[Case]
) -> RepeatedPlace:
    lon, lat = _point(centre) or (0.0, 0.0)
    grid = pack.grid_by_code.get(str(centre.get("grid_code")))
    times = [c["reported_at"] for c in members if c.get("reported_at") is not None]
    return RepeatedPlace(
        key,
        class_name(pack, key),
        round(lon, 6),
        round(lat, 6),
        street_name(pack, street_of(centre)),
        community_name(pack, grid.community) if grid else "",
        radius,
        tuple(sorted(str(c.get("case_number") or c["_id"]) for c in members)),
        min(times, default=centre.get("reported_at") or datetime.min),
        max(times, default=centre.get("reported_at") or datetime.min),
        sum(not is_closed(c) for c in members),
    )


def _value(score: Score, indicator: Indicator) -> float | None:
    ratio = score.indicators.get(indicator)
    return ratio.value if ratio else None


def league(scores: Iterable[Score]) -> list[LeagueRow]:
    """Best score first; entities without a score last, by code. Equal scores share a rank."""
    ordered = sorted(scores, key=lambda s: (s.score is None, -(s.score or 0), s.entity))
    rows: list[LeagueRow] = []
    for i, s in enumerate(ordered):
        tied = rows and s.score is not None and rows[-1].score == s.score
        rank = rows[-1].rank if tied else i + 1
        rows.append(
            LeagueRow(
                rank,
                s.entity,
                s.name,
                s.cases,
                s.score,
                s.grade,
                _value(s, Indicator.on_time_handling),
                _value(s, Indicator.closure),
            )
        )
    return rows


def district_ratio(streets: Iterable[Score], indicator: Indicator) -> float | None:
    """The whole district's rate: every case counts in exactly one street, so the
    streets' numerators and denominators add up to the district's."""
    ratios = [s.indicators[indicator] for s in streets if indicator in s.indicators]
    total = Ratio(
        numerator=sum(r.numerator for r in ratios),
        denominator=sum(r.denominator for r in ratios),
    )
    return total.value


@dataclass(frozen=True)
class Month:
    """What the summary compares of a month: its cases and its streets' scores."""

    cases: Sequence[Case]
    streets: Sequence[Score]


def _count_overdue(cases: Sequence[Case], as_of: datetime) -> int:
    return sum(overdue_by(c, as_of) is not None for c in cases)


def summary(this: Month, last: Month, as_of: datetime) -> list[Change]:
    """The month's volumes, closure, on-time rates, overdue and escalated cases beside the
    month before's (both counted as of `as_of`)."""

    def count(name: str, of: Any) -> Change:
        return Change(name, of(this.cases), of(last.cases))

    def rate(name: str, indicator: Indicator) -> Change:
        this_rate, last_rate = (district_ratio(m.streets, indicator) for m in (this, last))
        return Change(name, this_rate, last_rate, rate=True)

    return [
        count("上报 cases reported", len),
        count("结案 closed or settled", lambda cs: sum(is_closed(c) for c in cs)),
        rate("结案率 closure", Indicator.closure),
        rate("按期处置率 on-time handling", Indicator.on_time_handling),
        rate("按期结案率 on-time closure", Indicator.on_time_closure),
        count("超期 overdue", lambda cs: _count_overdue(cs, as_of)),
        count("升级 escalated", lambda cs: sum(escalation(c) is not None for c in cs)),
    ]


def three_rates(
    departments: Iterable[Score],
    streets: Iterable[Score],
    indicators: Sequence[Indicator] = THREE_RATES,
) -> list[RatesRow]:
    """The departments' and streets' three rates, in league order; none without scores
    carrying them (THREE_RATES)."""
    rows = []
    for level, scores in (("department", departments), ("street", streets)):
        for row in league(scores):
            score = next(s for s in scores if s.entity == row.code)
            rates = {i: score.indicators[i] for i in indicators if i in score.indicators}
            if rates:
                rows.append(RatesRow(level, row.code, row.name, rates))
    return rows


def build(
    cases: Sequence[Case],
    departments: Sequence[Score],
    streets: Sequence[Score],
    pack: CityPack,
    period: Period,
    as_of: datetime,
    last: Month | None = None,
    disputes: Sequence[Case] = (),
    visits: Sequence[VisitFinding] = (),
) -> Report:
    """The report of `period`; `last` is the month before (none: no comparison);
    `disputes` the open disputes and `visits` what visits found (demand.py)."""
    volumes = by_class(cases, pack)
    hotline = {"street": ranking(streets), "department": ranking(departments)}
    return Report(
        city=pack.city.name,
        district=pack.city.district.name,
        period=period,
        as_of=as_of,
        cases=len(cases),
        closed=sum(is_closed(c) for c in cases),
        by_class=volumes,
        by_street=by_street(cases, pack),
        by_channel=dict(Counter(str(c.get("channel") or "?") for c in cases).most_common()),
        grids=grid_density(cases, pack),
        hotspots=hotspots(cases, pack),
        repeated=repeated_components(cases, pack),
        on_time=on_time(departments),
        departments=league(departments),
        streets=league(streets),
        overdue=overdue(cases, pack, as_of),
        last_period=period.previous() if last is not None else None,
        summary=summary(Month(cases, streets), last, as_of) if last is not None else [],
        top_classes=top_classes(volumes),
        places=repeated_places(cases, pack),
        escalated=escalated(cases, pack),
        three_rates=three_rates(departments, streets),
        cases_overdue=_count_overdue(cases, as_of),
        cases_escalated=sum(escalation(c) is not None for c in cases),
        hotline=hotline,
        answered_directly=answered_directly(cases),
        demand=analyse(cases, last.cases if last is not None else None, pack, disputes, visits),
    )


def answered_directly(cases: Sequence[Case]) -> dict[str, int]:
    """How many of the month's cases each street answered directly, by street code."""
    found = Counter(street_of(c) for c in cases if c.get("state") == State.answered.value)
    return dict(sorted(found.items()))
