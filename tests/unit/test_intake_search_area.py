"""The duplicate search's keys (`gridloop.nearby`: a case in a report's box is found by one
of them) and a filing numbered without deciding again."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from gridloop.access import Principal, Role
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.nearby import MOST_CELLS, keys_around, keys_of
from schemas.events import Point
from services.intake.duplicates import search_box
from services.intake.reporting import decide_report, with_number
from services.intake.requests import ReportIn, report_of

lons = st.floats(116.39, 116.41)
lats = st.floats(39.91, 39.93)
radii = st.floats(0, 5000)  # the pack's range of duplicate radii


@given(lons, lats, radii, st.floats(0, 1), st.floats(0, 1))
def test_a_case_in_a_reports_box_holds_one_of_its_keys(
    lon: float, lat: float, radius: float, x: float, y: float
) -> None:
    w, s, e, n = box = search_box(Point(lon=lon, lat=lat), radius)
    case = (w + x * (e - w), s + y * (n - s))  # anywhere in the box, edges included
    around = keys_around("event", "0505", box)
    assert set(keys_of("event", "0505", *case)) & set(around)
    assert len(around) <= MOST_CELLS  # a few cells, at whatever level
    if radius <= 30:  # the finest cells where they are few (≈ 85 × 111 m)
        assert all(k.startswith("0:") for k in around)
    assert not set(keys_of("component", "0505", *case)) & set(around)  # its own class only


def test_numbering_a_decision_is_deciding_with_the_number() -> None:
    pack = load_city_pack(DEMO_CITY_PACK)
    asked = ReportIn.model_validate(
        {
            "channel": "supervisor",
            "kind": "component",
            "class_code": "0101",
            "point": {"lon": 116.4015, "lat": 39.9205},
            "description": "井盖破损 manhole cover broken",
        }
    )
    who, now = Principal(Role.supervisor, "sup-1"), datetime(2026, 3, 1, tzinfo=UTC)
    report = report_of(asked, "C-1", who)
    first = decide_report(pack, report, now)
    number = "B0101-20260302-0001"
    assert with_number(first, number) == decide_report(pack, report, now, (), number)
    assert first[1].model_dump()["case_number"] is None  # the first decision is left as it was
