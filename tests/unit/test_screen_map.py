"""The big screen's map and trend (issue 18): open cases by cell, the worst light of each,
the last 30 days with the quiet ones as 0, the district's grids as SVG."""

from __future__ import annotations

from datetime import date

import pytest

from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from services.evaluation.screenmap import (
    CELLS_ACROSS,
    cell_degrees,
    district_frame,
    spots,
    svg_map,
    trend,
)

PACK: CityPack = load_city_pack(DEMO_CITY_PACK)


def group(x: int | None, y: int | None, light: str | None, n: int) -> dict[str, object]:
    return {"_id": {"x": x, "y": y, "light": light}, "n": n}


def test_a_cell_counts_all_its_open_cases_and_shows_the_worst_light() -> None:
    f = district_frame(PACK)
    size = cell_degrees(f)
    assert size == pytest.approx((f.east - f.west) / CELLS_ACROSS)
    x, y = int(116.4005 // size), int(39.9204 // size)
    found = spots(
        f,
        [
            group(x, y, "green", 3),
            group(x, y, "red", 1),
            group(x + 5, y, "yellow", 2),
            group(x + 9, y, None, 1),  # a light the screen does not know: green
            group(None, None, "green", 4),  # no point: not on the map
        ],
    )
    assert [(s.cases, s.light) for s in found] == [(1, "green"), (2, "yellow"), (4, "red")]
    red = found[-1]  # the reddest last: drawn on top
    cx, cy = f.xy((x + 0.5) * size, (y + 0.5) * size)
    assert (red.x, red.y) == (round(cx, 1), round(cy, 1))
    assert 0 <= red.x <= f.width and 0 <= red.y <= f.height


def test_the_trend_is_thirty_days_to_today_with_quiet_days_as_zero() -> None:
    days = trend(date(2026, 3, 1), {"2026-03-01": 4, "2026-02-28": 2}, {"2026-01-31": 1})
    assert len(days) == 30
    assert (days[0].day, days[-1].day) == ("2026-01-31", "2026-03-01")
    assert (days[0].reported, days[0].closed) == (0, 1)
    assert (days[-2].reported, days[-1].reported) == (2, 4)
    assert sum(d.reported for d in days) == 6


def test_the_map_draws_every_grid_of_the_pack_named_and_escaped() -> None:
    svg = svg_map(PACK)
    assert svg.count('<path class="grid"') == len(PACK.grids)
    assert "<title>网格 001</title>" in svg
    assert 'role="img"' in svg and PACK.city.district.name in svg
    assert '<g id="spots"></g>' in svg


def test_a_tall_district_is_narrowed_to_the_map_s_height() -> None:
    wide = district_frame(PACK)  # the demo pack: a strip of eight grids
    assert wide.width == 720.0 and wide.height < 440.0
    tall = district_frame(PACK, width=720.0, height=wide.height / 2)
    assert tall.height == pytest.approx(wide.height / 2)
    assert tall.width == pytest.approx(360.0)  # the same shape, half the size
