"""The workbench's maps and case page facts: the frame, the grids as SVG, the filters, each
stage's clock, the photos — on the demo pack and hand-built records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gridloop.cases.lights import Light
from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from schemas.events import Stage
from services.console import core, maps

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
INTAKE = "http://127.0.0.1:8000"
MEDIA = "0123456789abcdef01234567"


@pytest.fixture(scope="module")
def pack() -> CityPack:
    return load_city_pack(DEMO_CITY_PACK)


def record(**fields: Any) -> CaseRecord:
    doc = {"_id": "C-1", "state": "dispatched", "version": 3} | fields
    return CaseRecord.model_validate(doc)


def test_a_square_of_ground_is_square_on_the_drawing() -> None:
    f = maps.frame([(116.0, 40.0, 116.01, 40.01)], width=500, margin=0)
    assert f.xy(116.0, 40.01) == (0.0, 0.0)  # north-west: the top left
    x, y = f.xy(116.01, 40.0)
    assert x == pytest.approx(500)
    # a degree of latitude is longer on the ground than one of longitude, by 1 / cos(40°)
    assert y == pytest.approx(500 / 0.766, rel=0.01)


def test_every_grid_is_drawn_inside_the_frame(pack: CityPack) -> None:
    f = maps.frame(pack.polygon(g.code).bounds for g in pack.grids)
    drawn = maps.drawn(f, pack, [g.code for g in pack.grids])
    assert len(drawn) == len(pack.grids) == 8
    for grid in drawn:
        assert grid.d.startswith("M") and grid.d.endswith("Z")
        numbers = [
            float(n)
            for p in grid.d.replace("M", "").replace("L", "").split(" Z")[0].split()
            for n in p.split(",")
        ]
        assert all(0 <= n <= max(f.width, f.height) for n in numbers)


def test_a_case_map_shows_its_grid_its_neighbours_and_its_point(pack: CityPack) -> None:
    case = record(
        grid_code="110101002002002", point={"type": "Point", "coordinates": [116.4072, 39.9201]}
    )
    shown = maps.case_map(pack, case)
    assert shown is not None
    assert shown.grid.code == "110101002002002"
    assert [g.code for g in shown.around] == ["110101002002001"]  # the district ends east
    assert shown.point is not None and 0 < shown.point[0] < shown.frame.width
    assert maps.case_map(pack, record(grid_code="999999999999999")) is None


def test_the_map_filters_by_class_street_and_department() -> None:
    case = record(kind="event", class_code="0401", grid_code="110101002002002", department="ROADS")
    assert maps.Filters().keep(case)
    assert maps.Filters("event:0401", "002", "ROADS").keep(case)
    assert not maps.Filters(class_code="component:0401").keep(case)
    assert not maps.Filters(street="001").keep(case)
    assert not maps.Filters(department="WATER").keep(case)
    assert maps.Filters(department="WATER").keep(case.model_copy(update={"assisting": ["WATER"]}))


def test_each_stage_shows_its_clock_and_a_stage_passed_is_done() -> None:
    case = record(
        state="dispatched",
        verification_due=NOW - timedelta(hours=3),
        deadline=NOW + timedelta(hours=1),
        sla={"dispatch": {"light": "red", "deadline": NOW - timedelta(hours=1), "case_version": 2}},
    )
    stages = core.stage_lights(case, NOW)
    assert [(s.stage, s.light, s.done) for s in stages] == [
        (Stage.verify, Light.green, True),
        (Stage.dispatch, Light.red, True),
        (Stage.handle, Light.yellow, False),  # due within two hours
    ]
    late = record(state="reported", verification_due=NOW - timedelta(minutes=1))
    [verify] = core.stage_lights(late, NOW)
    assert (verify.light, verify.done) == (Light.red, False)


def test_photos_before_and_after_are_the_cases_own_uploads() -> None:
    handled = {"photos": [f"{INTAKE}/media/{MEDIA[::-1]}", "https://elsewhere.example/p.jpg"]}
    case = record(
        media=[MEDIA],
        timeline=[
            {
                "event_id": "e1",
                "type": "verified",
                "version": 2,
                "at": NOW,
                "data": {"media": ["ab" * 12]},
            },
            {"event_id": "e2", "type": "handled", "version": 5, "at": NOW, "data": handled},
        ],
    )
    photos = core.photos(case, INTAKE)
    assert photos.before == (MEDIA, "ab" * 12)
    assert photos.after == (MEDIA[::-1],)  # a link elsewhere is the department's own
    assert MEDIA in photos and "ff" * 12 not in photos


def test_a_deadline_from_the_form_is_the_citys_local_time() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    assert core.local_deadline("2026-12-09T18:00", zone) == "2026-12-09T18:00:00+08:00"
    assert core.local_deadline("soon", zone) == "soon"  # the API refuses it beside the field


def test_the_lead_may_ask_for_an_extension_or_parking_once_at_a_time() -> None:
    ack = {
        "event_id": "a",
        "type": "gridloop.case.acknowledged",
        "version": 3,
        "at": NOW,
        "data": {"department": "ROADS"},
    }
    case = record(department="ROADS", timeline=[ack])
    assert core.actions(case, "ROADS") == ("handled", "return", "extension", "parking")
    pending = {
        "request_id": "r",
        "kind": "parking",
        "department": "ROADS",
        "reason": "x",
        "case_version": 3,
    }
    assert core.actions(case.model_copy(update={"pending_request": pending}), "ROADS") == (
        "handled",
        "return",
    )


def test_the_class_shown_is_the_filings_when_the_operator_corrected_it() -> None:
    filed = {"kind": "event", "class_code": "0505"}
    corrected = record(
        kind="event",
        class_code="0102",
        timeline=[{"event_id": "e1", "type": "filed", "version": 2, "at": NOW, "data": filed}],
    )
    assert core.filed_class(corrected) == ("event", "0505")
    assert core.filed_class(record(kind="event", class_code="0102")) == ("event", "0102")
