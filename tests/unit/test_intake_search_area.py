"""The duplicate search's area (one polygon set for many reports) and a filing numbered
without deciding again."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from gridloop.auth import Principal, Role
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from schemas.events import Point
from services.intake.core import ReportIn, decide_report, with_number
from services.intake.duplicates import Box, search_area, search_box

Ring = list[list[float]]
lons = st.floats(116.39, 116.41)
lats = st.floats(39.91, 39.93)
radii = st.floats(1, 300)


def _bounds(ring: Ring) -> Box:
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return min(xs), min(ys), max(xs), max(ys)


def _overlap(a: Box, b: Box) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


@given(st.lists(st.tuples(lons, lats, radii), min_size=1, max_size=30))
def test_the_area_holds_every_box_in_polygons_apart(
    reports: list[tuple[float, float, float]],
) -> None:
    boxes = [search_box(Point(lon=lon, lat=lat), r) for lon, lat, r in reports]
    area = search_area(boxes)
    assert area["type"] == "MultiPolygon"
    rings: list[Ring] = [polygon[0] for polygon in area["coordinates"]]  # type: ignore[attr-defined]
    bounds = [_bounds(ring) for ring in rings]
    for ring in rings:
        assert ring[0] == ring[-1] and len(ring) == 5  # closed rectangles
    for i, a in enumerate(bounds):  # GeoJSON wants a MultiPolygon's polygons apart
        assert not any(_overlap(a, b) for b in bounds[i + 1 :])
    for w, s, e, n in boxes:  # every box inside one polygon, with the margin
        assert any(b[0] < w and b[1] < s and e < b[2] and n < b[3] for b in bounds)


def test_numbering_a_decision_is_deciding_with_the_number() -> None:
    pack = load_city_pack(DEMO_CITY_PACK)
    report = ReportIn.model_validate(
        {
            "channel": "supervisor",
            "kind": "component",
            "class_code": "0101",
            "point": {"lon": 116.4015, "lat": 39.9205},
            "description": "井盖破损 manhole cover broken",
        }
    )
    who, now = Principal(Role.supervisor, "sup-1"), datetime(2026, 3, 1, tzinfo=UTC)
    first = decide_report(report, pack, "C-1", who, now)
    number = "B0101-20260302-0001"
    assert with_number(first, number) == decide_report(report, pack, "C-1", who, now, (), number)
    assert first[1].model_dump()["case_number"] is None  # the first decision is left as it was
