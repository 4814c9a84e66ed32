"""The big screen (大屏): a public page of a district's live scores, open cases by stage and
traffic light, a map of the open cases, a 30-day trend of reports and closures, and the
league tables, refreshing itself from `GET /screen/data`.

Public, so it shows only counts, scores, codes and the names of departments and streets:
never a case, a reporter or an address (the map shows how many open cases lie in each of
its small cells, not where a case is). Every query is bounded: two aggregations over the
open cases, two over the last 30 days' reports and closures (30 rows each), four counts,
and the month's scores of departments and streets (tens).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, computed_field
from pymongo.asynchronous.collection import AsyncCollection

from gridloop.citypack import CityPack
from gridloop.lifecycle import OPEN_STATES, State
from gridloop.mongo import Document
from gridloop.scoring import HOTLINE, Indicator, Level, Ratio, Score
from gridloop.svgmap import Frame
from schemas import clock
from services.evaluation.hotline import Ranked, ranking
from services.evaluation.report.model import league
from services.evaluation.screenmap import (
    TREND_DAYS,
    Day,
    Spot,
    cell_degrees,
    district_frame,
    spots,
    svg_map,
    trend,
)
from services.evaluation.store import ScoreStore

PAGE = (Path(__file__).parent / "static" / "screen.html").read_text(encoding="utf-8")
LIGHTS = ("green", "yellow", "red")
# The SLA stage an open case is in, by state: its light is that stage's (green until the SLA
# engine warns). A reported case is verified (citizens) or filed (supervisors) next.
STAGES: dict[State, tuple[str, ...]] = {
    State.reported: ("verify", "file"),
    State.verified: ("file",),
    State.filed: ("dispatch",),
    State.returned: ("dispatch",),
    State.rework: ("dispatch",),
    State.dispatched: ("handle",),
    State.parked: ("handle",),
    State.handled: ("check",),
}
SHOWN = (
    Indicator.filing_rate,
    Indicator.on_time_handling,
    Indicator.closure,
    Indicator.on_time_closure,
    Indicator.satisfaction,
)
router = APIRouter()


def _light(stages: tuple[str, ...]) -> Any:
    """The light of the first of `stages` that has one, else green. A handling light counts
    only while its deadline is the case's deadline: an extension or a new dispatch (rework)
    starts the clock afresh, and the old light no longer applies."""
    found: Any = "green"
    for stage in reversed(stages):
        light: Any = f"$sla.{stage}.light"
        if stage == "handle":
            current = {"$eq": [f"$sla.{stage}.deadline", "$deadline"]}
            light = {"$cond": [current, light, None]}
        found = {"$ifNull": [light, found]}
    return found


def _stage_light() -> Any:
    """An open case's light: its stage's (by its state)."""
    branches = [
        {"case": {"$eq": ["$state", state.value]}, "then": _light(stages)}
        for state, stages in STAGES.items()
    ]
    return {"$switch": {"branches": branches, "default": "green"}}


OPEN = {"$match": {"state": {"$in": sorted(s.value for s in OPEN_STATES)}}}


def stage_light_pipeline() -> list[Document]:
    return [
        OPEN,
        {"$group": {"_id": {"state": "$state", "light": _stage_light()}, "n": {"$sum": 1}}},
    ]


def map_pipeline(f: Frame) -> list[Document]:
    """Open cases counted by cell of the map (`cell_degrees` a side) and light."""
    size = cell_degrees(f)

    def cell(axis: int) -> Any:
        return {"$floor": {"$divide": [{"$arrayElemAt": ["$point.coordinates", axis]}, size]}}

    key = {"x": cell(0), "y": cell(1), "light": _stage_light()}
    return [OPEN, {"$group": {"_id": key, "n": {"$sum": 1}}}]


def per_day_pipeline(field: str, since: datetime, zone: str) -> list[Document]:
    """Cases by the city's day of `field` (reported_at, closed_at) since `since`."""
    day = {"$dateToString": {"format": "%Y-%m-%d", "date": f"${field}", "timezone": zone}}
    return [
        {"$match": {field: {"$gte": since}, "state": {"$exists": True}}},
        {"$group": {"_id": day, "n": {"$sum": 1}}},
    ]


class StageRow(BaseModel):
    state: State
    green: int = 0
    yellow: int = 0
    red: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> int:
        return self.green + self.yellow + self.red


class Standing(BaseModel):
    rank: int
    code: str
    name: str
    cases: int
    score: float | None
    grade: str | None


class Figure(BaseModel):
    indicator: Indicator
    numerator: int
    denominator: int
    value: float | None


class ScreenData(BaseModel):
    district: str
    period: str  # this month, in the city's time
    as_of: datetime
    open_cases: int
    stages: list[StageRow]
    lights: dict[str, int]
    reported_today: int
    closed_today: int
    reported_this_month: int
    closed_this_month: int
    district_figures: list[Figure]  # the streets' figures summed: the whole district
    departments: list[Standing]
    streets: list[Standing]
    spots: list[Spot]  # open cases on the map (the page's SVG), by cell
    trend: list[Day]  # reports and closures a day, the last 30 days, oldest first
    # The hotline's three rates (12345) of the district this month, and its street ranking.
    hotline_figures: list[Figure] = []
    hotline_streets: list[Ranked] = []


def _stages(groups: list[Document]) -> list[StageRow]:
    rows = {state: StageRow(state=state) for state in STAGES}
    for group in groups:
        state, light = State(group["_id"]["state"]), group["_id"].get("light")
        light = light if light in LIGHTS else "green"
        row = rows.setdefault(state, StageRow(state=state))  # checked: no SLA stage
        setattr(row, light, getattr(row, light) + group["n"])
    return list(rows.values())


def district_figures(streets: list[Score], shown: tuple[Indicator, ...] = SHOWN) -> list[Figure]:
    """Every case counts in exactly one street, so the streets' ratios add up to the
    district's."""
    figures = []
    for indicator in shown:
        ratios = [s.indicators[indicator] for s in streets if indicator in s.indicators]
        total = Ratio(
            numerator=sum(r.numerator for r in ratios),
            denominator=sum(r.denominator for r in ratios),
        )
        figures.append(Figure(indicator=indicator, value=total.value, **total.model_dump()))
    return figures


def _standings(scores: list[Score]) -> list[Standing]:
    return [
        Standing(rank=r.rank, code=r.code, name=r.name, cases=r.cases, score=r.score, grade=r.grade)
        for r in league(scores)
    ]


async def _since(cases: AsyncCollection[Document], field: str, since: datetime) -> int:
    return await cases.count_documents({field: {"$gte": since}, "state": {"$exists": True}})


async def _per_day(
    cases: AsyncCollection[Document], field: str, since: datetime, zone: str
) -> dict[str, int]:
    return {
        g["_id"]: g["n"] async for g in await cases.aggregate(per_day_pipeline(field, since, zone))
    }


async def screen_data(store: ScoreStore, now: datetime) -> ScreenData:
    pack, zone = store.pack, store.zone
    cases = store.scores.database["cases"]
    local = now.astimezone(zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month, period = day.replace(day=1), local.strftime("%Y-%m")
    stages = _stages([g async for g in await cases.aggregate(stage_light_pipeline())])
    frame = _frames(pack)
    groups = [g async for g in await cases.aggregate(map_pipeline(frame))] if frame else []
    since = day - timedelta(days=TREND_DAYS - 1)
    reported = await _per_day(cases, "reported_at", since, zone.key)
    closed = await _per_day(cases, "closed_at", since, zone.key)
    departments = await store.league(Level.department, period)
    streets = await store.league(Level.street, period)
    return ScreenData(
        district=pack.city.district.name if pack else "",
        period=period,
        as_of=now,
        open_cases=sum(r.total for r in stages),
        stages=stages,
        lights={light: sum(getattr(r, light) for r in stages) for light in LIGHTS},
        reported_today=await _since(cases, "reported_at", day),
        closed_today=await _since(cases, "closed_at", day),
        reported_this_month=await _since(cases, "reported_at", month),
        closed_this_month=await _since(cases, "closed_at", month),
        district_figures=district_figures(streets),
        departments=_standings(departments),
        streets=_standings(streets),
        spots=spots(frame, groups) if frame else [],
        trend=trend(day.date(), reported, closed),
        hotline_figures=district_figures(streets, HOTLINE),
        hotline_streets=ranking(streets),
    )


# Drawn once a pack (a process has one; weak: a test's pack that goes is forgotten).
_FRAMES: WeakKeyDictionary[CityPack, Frame] = WeakKeyDictionary()


def _frames(pack: CityPack | None) -> Frame | None:
    """The district map's frame, once a pack (the page's SVG is drawn in the same one)."""
    if pack is None or not pack.grids:
        return None
    if pack not in _FRAMES:
        _FRAMES[pack] = district_frame(pack)
    return _FRAMES[pack]


_PAGES: WeakKeyDictionary[CityPack, str] = WeakKeyDictionary()


def _page(pack: CityPack | None) -> str:
    """The page with the district's grids drawn in (once a pack)."""
    if pack is None or not pack.grids:
        return PAGE.replace("<!--MAP-->", '<p class="empty">no grids in the city pack</p>')
    if pack not in _PAGES:
        _PAGES[pack] = PAGE.replace("<!--MAP-->", svg_map(pack))
    return _PAGES[pack]


def _store(request: Request) -> ScoreStore:
    store: ScoreStore = request.app.state.scores
    return store


@router.get("/screen", response_class=HTMLResponse, include_in_schema=False)
async def page(store: Annotated[ScoreStore, Depends(_store)]) -> HTMLResponse:
    """The page: plain HTML, CSS and JS, nothing fetched from elsewhere (a closed network)."""
    return HTMLResponse(_page(store.pack), headers={"Cache-Control": "no-cache"})


@router.get("/screen/data")
async def data(store: Annotated[ScoreStore, Depends(_store)]) -> ScreenData:
    """The figures the page shows (public: counts, scores, codes and names only)."""
    return await screen_data(store, clock.now())
