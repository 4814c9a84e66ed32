"""The lead's patrols page from the grid service's answer: grids named by community, times
parsed, and a map of the communities patrolled with each last fix inside its drawing."""

from __future__ import annotations

from typing import Any

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from services.console.patrols import named, patrol_map, rows

PACK = load_city_pack(DEMO_CITY_PACK)


def _patrol(grid: str, lon: float, lat: float) -> dict[str, Any]:
    at = "2026-11-02T08:00:00Z"
    last = {"lon": lon, "lat": lat, "at": "2026-11-02T08:05:00Z", "outside": False}
    return {"patrol": f"pt-{grid}", "staff": "GM-1", "grid": grid, "started_at": at, "last": last}


def test_rows_name_the_community_and_parse_the_times() -> None:
    [row] = rows([_patrol("110101001001001", 116.4005, 39.9204)], PACK)
    assert row["grid_name"] == "多福巷社区 Duofuxiang 网格 001"
    assert (row["last_at"].minute, row["where"]) == (5, "116.40050, 39.92040")


def test_the_map_shows_the_communities_patrolled_and_each_fix_inside() -> None:
    shown = rows(
        [
            _patrol("110101001001001", 116.4005, 39.9204),
            _patrol("110101002002002", 116.4075, 39.9204),
        ],
        PACK,
    )
    drawing = patrol_map(PACK, shown)
    assert drawing is not None
    assert [g.code[6:12] for g in drawing.grids] == ["001001", "001001", "002002", "002002"]
    for x, y, _ in drawing.dots:
        assert 0 < x < drawing.frame.width and 0 < y < drawing.frame.height
    assert patrol_map(PACK, []) is None
    assert patrol_map(None, shown) is None


def test_a_grid_named_after_its_community_says_the_community_once() -> None:
    assert named("和平里第12社区 Hepingli 12", "和平里第12社区 网格002") == (
        "和平里第12社区 Hepingli 12 网格002"
    )
    assert named("多福巷社区 Duofuxiang", "网格 001") == "多福巷社区 Duofuxiang 网格 001"
