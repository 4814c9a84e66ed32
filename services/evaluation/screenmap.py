"""The big screen's map of open cases and its 30-day trend (issue 18): pure, from the city
pack and the screen's aggregations (services/evaluation/screen.py).

The district's grids are drawn once, as inline SVG in the page (gridloop/svgmap.py, the
workbench's maps' frame); the open cases come with each refresh as counts in small cells
of the map, so the answer stays small however many cases are open, and it names no case.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from xml.sax.saxutils import escape, quoteattr

from pydantic import BaseModel

from gridloop.citypack import CityPack
from gridloop.svgmap import Frame, frame, path

CELLS_ACROSS = 120  # the map's width in cells: a dot a cell
WIDTH = 720.0  # the map's most, in the page's pixels
HEIGHT = 440.0
TREND_DAYS = 30
LIGHTS = ("green", "yellow", "red")  # worst last


class Spot(BaseModel):
    """Open cases in one cell of the map: where its centre is drawn, how many, the worst
    traffic light among them."""

    x: float
    y: float
    cases: int
    light: str


class Day(BaseModel):
    day: str  # 2026-11-29, the city's day
    reported: int
    closed: int


def district_frame(pack: CityPack, width: float = WIDTH, height: float = HEIGHT) -> Frame:
    """The district within `width` × `height`: a tall district is narrowed, so the map's
    units stay the page's pixels and a dot keeps its size."""
    bounds = [pack.polygon(g.code).bounds for g in pack.grids]
    f = frame(bounds, width, margin=0.03)
    return f if f.height <= height else frame(bounds, width * height / f.height, margin=0.03)


def cell_degrees(f: Frame) -> float:
    """A cell's side in degrees (of longitude and of latitude alike)."""
    return (f.east - f.west) / CELLS_ACROSS


def spots(f: Frame, groups: Iterable[Mapping[str, object]]) -> list[Spot]:
    """Cells from the aggregation's groups ({_id: {x, y, light}, n}, x and y in cells of
    `cell_degrees`), their lights summed: the worst light shows, the reddest drawn last."""
    size = cell_degrees(f)
    counts: dict[tuple[int, int], int] = defaultdict(int)
    worst: dict[tuple[int, int], int] = defaultdict(int)
    for group in groups:
        key = group["_id"]
        assert isinstance(key, Mapping)
        if key.get("x") is None or key.get("y") is None:
            continue  # a case without a point
        where = (int(key["x"]), int(key["y"]))
        light = key.get("light")
        counts[where] += int(str(group["n"]))
        worst[where] = max(worst[where], LIGHTS.index(light) if light in LIGHTS else 0)
    found = [
        Spot(
            x=round(f.xy((x + 0.5) * size, (y + 0.5) * size)[0], 1),
            y=round(f.xy((x + 0.5) * size, (y + 0.5) * size)[1], 1),
            cases=n,
            light=LIGHTS[worst[(x, y)]],
        )
        for (x, y), n in counts.items()
    ]
    return sorted(found, key=lambda s: (LIGHTS.index(s.light), s.cases, s.x, s.y))


def trend(
    today: date, reported: Mapping[str, int], closed: Mapping[str, int], days: int = TREND_DAYS
) -> list[Day]:
    """The `days` days up to `today`, oldest first; a day without cases is a 0."""
    shown = [(today - timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]
    return [Day(day=d, reported=reported.get(d, 0), closed=closed.get(d, 0)) for d in shown]


def svg_map(pack: CityPack, width: float = WIDTH) -> str:
    """The district's grids as an SVG image for the page; the open cases' dots go in its
    `#spots` group."""
    f = district_frame(pack, width)
    grids = "".join(
        f'<path class="grid" d={quoteattr(path(f, pack.polygon(g.code)))}>'
        f"<title>{escape(g.name or g.code)}</title></path>"
        for g in pack.grids
    )
    label = quoteattr(f"{pack.city.district.name}: open cases on the map 在办案件分布")
    return (
        f'<svg id="map" viewBox="0 0 {f.width:.0f} {f.height:.0f}" role="img" '
        f"aria-label={label}>"
        f'<g id="grids">{grids}</g><g id="spots"></g></svg>'
    )
