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
from typing import Any
from zoneinfo import ZoneInfo

from gridloop.citypack import CityPack
from gridloop.lifecycle import OPEN_STATES, State
from gridloop.scoring import Indicator, Ratio, Score

Case = dict[str, Any]
PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")  # whole: use fullmatch
KM_PER_DEGREE = 111.32  # along a meridian; along a parallel it shrinks by cos(latitude)


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
    label: str  # for charts: Latin letters and digits only
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


def by_class(cases: Sequence[Case], pack: CityPack) -> list[Volume]:
    names = {
        f"{kind} {code}": (c.name, f"{kind[0].upper()}{code}")
        for (kind, code), c in pack.classes.items()
    }
    return _volumes(cases, class_key, names)


def by_street(cases: Sequence[Case], pack: CityPack) -> list[Volume]:
    names = {code: (s.name, latin(s.name, code)) for code, s in pack.streets.items()}
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


def hotspots(cases: Sequence[Case], top: int = 10, least: int = 3) -> list[Hotspot]:
    """The squares of about 100 m with the most cases (at least `least`)."""
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


def overdue(cases: Sequence[Case], pack: CityPack, as_of: datetime, top: int = 20) -> list[Overdue]:
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
        )
        for case, by in late[:top]
    ]


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


def build(
    cases: Sequence[Case],
    departments: Sequence[Score],
    streets: Iterable[Score],
    pack: CityPack,
    period: Period,
    as_of: datetime,
) -> Report:
    return Report(
        city=pack.city.name,
        district=pack.city.district.name,
        period=period,
        as_of=as_of,
        cases=len(cases),
        closed=sum(is_closed(c) for c in cases),
        by_class=by_class(cases, pack),
        by_street=by_street(cases, pack),
        by_channel=dict(Counter(str(c.get("channel") or "?") for c in cases).most_common()),
        grids=grid_density(cases, pack),
        hotspots=hotspots(cases),
        repeated=repeated_components(cases, pack),
        on_time=on_time(departments),
        departments=league(departments),
        streets=league(streets),
        overdue=overdue(cases, pack, as_of),
        answered_directly=answered_directly(cases),
    )


def answered_directly(cases: Sequence[Case]) -> dict[str, int]:
    """How many of the month's cases each street answered directly, by street code."""
    found = Counter(street_of(c) for c in cases if c.get("state") == State.answered.value)
    return dict(sorted(found.items()))
