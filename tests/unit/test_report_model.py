"""The monthly report's data, from hand-built case documents and scores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.scoring import Indicator, Level, PeriodKind, Ratio, Score
from services.evaluation.report.model import (
    Case,
    Period,
    build,
    by_class,
    by_street,
    grid_density,
    hotspots,
    latin,
    league,
    on_time,
    overdue,
    repeated_components,
)
from services.evaluation.report.tables import tables

PACK: CityPack = load_city_pack(DEMO_CITY_PACK)
GRID_A, GRID_B = "110101001001001", "110101002002002"  # streets 001 and 002
T0 = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)
MANHOLE = "1101010101000001"  # a water manhole cover of the demo inventory


def case(case_id: str, **fields: Any) -> Case:
    handled = fields.pop("handled", None)
    doc: Case = {
        "_id": case_id,
        "state": "reported",
        "kind": "event",
        "class_code": "0101",
        "grid_code": GRID_A,
        "channel": "supervisor",
        "point": {"type": "Point", "coordinates": [116.4005, 39.9204]},
        "reported_at": T0,
        "timeline": [{"type": "reported", "at": T0}],
    }
    if handled is not None:
        doc["timeline"].append({"type": "handled", "at": handled})
    return doc | fields


def dispatched(case_id: str, deadline: datetime, **fields: Any) -> Case:
    defaults: dict[str, Any] = {"state": "dispatched", "department": "WATER"}
    return case(case_id, deadline=deadline, **(defaults | fields))


def test_a_period_is_a_month_of_the_city_s_time() -> None:
    period = Period.parse("2026-12", "Asia/Shanghai")
    assert period.start == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert period.end == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)  # into the next year


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-1", "2026-00", "nov", "2026-11-01", "2026-11\n", ""]
)
def test_a_period_not_written_yyyy_mm_is_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        Period.parse(text, "Asia/Shanghai")


def test_latin_keeps_the_latin_part_of_a_name_or_falls_back_to_the_code() -> None:
    assert latin("东华门街道 Donghuamen", "001") == "Donghuamen"
    assert latin("网格 001", "x") == "001"
    assert latin("多福巷", "001001") == "001001"


def test_volumes_by_class_count_cases_and_closed_ones_most_first() -> None:
    cases = [
        case("1"),
        case("2", state="closed"),
        case("3", kind="component", class_code="0101", state="evaluated"),
        case("4", class_code="0102", state="voided"),
        case("5", class_code="0102"),
        case("6", class_code="0102"),
    ]
    volumes = by_class(cases, PACK)
    assert [(v.code, v.cases, v.closed) for v in volumes] == [
        ("event 0102", 3, 1),
        ("event 0101", 2, 1),
        ("component 0101", 1, 1),
    ]
    # Charts label by name, not code (component and event codes overlap: 0101 is both).
    assert volumes[2].label == "上水井盖 water manhole cover"
    assert volumes[1].label == "私搭乱建 illegal structure"
    assert volumes[0].name == PACK.classes[("event", "0102")].name


def test_volumes_by_street_take_the_street_from_the_grid_code() -> None:
    volumes = by_street([case("1"), case("2", grid_code=GRID_B), case("3", grid_code=GRID_B)], PACK)
    assert [(v.code, v.cases, v.label) for v in volumes] == [
        ("002", 2, "景山街道 Jingshan"),
        ("001", 1, "东华门街道 Donghuamen"),
    ]


def test_density_covers_every_grid_and_divides_by_its_area() -> None:
    grids = {
        g.code: g for g in grid_density([case("1"), case("2"), case("3", grid_code=GRID_B)], PACK)
    }
    assert set(grids) == {g.code for g in PACK.grids}
    assert grids[GRID_A].cases == 2 and grids[GRID_B].cases == 1
    assert grids["110101001002001"].cases == 0 and grids["110101001002001"].per_km2 == 0
    # A demo grid is 0.001° of longitude (85 m at 39.92° N) by 0.0009° of latitude (100 m).
    assert grids[GRID_A].area_km2 == pytest.approx(0.00855, rel=0.01)
    assert grids[GRID_A].per_km2 == pytest.approx(2 / grids[GRID_A].area_km2)


def near(case_id: str, lon: float, lat: float, **fields: Any) -> Case:
    return case(case_id, point={"type": "Point", "coordinates": [lon, lat]}, **fields)


def test_hotspots_are_squares_of_about_100_m_with_at_least_three_cases() -> None:
    cluster = [near(str(i), 116.40051 + i * 0.00002, 39.92041, class_code="0102") for i in range(4)]
    pair = [near("p1", 116.4075, 39.9201), near("p2", 116.40751, 39.9201)]
    far_apart = [
        near("f1", 116.403, 39.9203),
        near("f2", 116.406, 39.9207),
        near("f3", 116.4045, 39.9208),
    ]
    spots = hotspots(cluster + pair + far_apart, PACK)
    assert len(spots) == 1
    spot = spots[0]
    assert (spot.cases, spot.top_class, spot.grid_code) == (4, "event 0102", GRID_A)
    # Named from the pack: the class, the grid's street, community and grid.
    assert spot.class_name == "暴露垃圾 exposed garbage"
    assert (spot.street, spot.community) == ("东华门街道 Donghuamen", "多福巷社区 Duofuxiang")
    assert spot.grid_name == "网格 001"
    assert abs(spot.lon - 116.4005) < 0.001 and abs(spot.lat - 39.9204) < 0.001


def test_a_component_reported_by_several_cases_failed_repeatedly() -> None:
    cases = [
        case("c2", component_id=MANHOLE),
        case("c1", component_id=MANHOLE),
        case("c3", component_id="1101010118000001"),  # once: not repeated
        case("c4", component_id="1101019999000001"),  # unknown to the inventory
        case("c5", component_id="1101019999000001", grid_code=GRID_B),
    ]
    found = repeated_components(cases, PACK)
    assert [(r.component_id, r.case_ids) for r in found] == [
        (MANHOLE, ("c1", "c2")),
        ("1101019999000001", ("c4", "c5")),
    ]
    assert "water manhole cover" in found[0].name and found[0].grid_code == GRID_A
    assert found[1].name == "" and found[1].class_code == "0101"


DEADLINE = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)


def test_longest_overdue_counts_late_handling_and_open_cases_past_their_deadline() -> None:
    cases = [
        dispatched("in-time", DEADLINE, state="handled", handled=DEADLINE - timedelta(hours=1)),
        dispatched("late-2h", DEADLINE, state="closed", handled=DEADLINE + timedelta(hours=2)),
        dispatched("open", DEADLINE),  # still with the department on 1 December
        dispatched("parked", DEADLINE, state="parked", case_number="DC-0007"),
        dispatched("not-yet", NOW + timedelta(days=1)),
        case("voided", state="voided", deadline=DEADLINE),  # left the loop: not overdue
    ]
    rows = overdue(cases, PACK, NOW)
    # Shown by case number when it has one; equally late cases in the order of their ids.
    assert [r.case_id for r in rows] == ["open", "DC-0007", "late-2h"]
    assert rows[1].hours_over == pytest.approx((NOW - DEADLINE).total_seconds() / 3600, abs=0.1)
    assert rows[1].still_open and not rows[2].still_open
    assert rows[2].hours_over == 2.0
    assert [r.case_id for r in overdue(cases, PACK, NOW, top=1)] == ["open"]


def test_a_parked_case_is_as_late_as_when_it_was_parked() -> None:
    """Issue 19: parking stops the clock. Parked an hour before its deadline, a case is
    not overdue however long it stays parked; parked 3 h after it, it is 3 h over."""
    early = dispatched("parked-early", DEADLINE, state="parked")
    early["parked_at"] = DEADLINE - timedelta(hours=1)
    late = dispatched("parked-late", DEADLINE, state="parked")
    late["parked_at"] = DEADLINE + timedelta(hours=3)
    [row] = overdue([early, late], PACK, NOW)
    assert (row.case_id, row.hours_over, row.still_open) == ("parked-late", 3.0, True)


def score(entity: str, value: float | None, level: Level = Level.department) -> Score:
    return Score(
        level=level,
        entity=entity,
        name=f"name {entity}",
        period="2026-11",
        period_kind=PeriodKind.month,
        cases=10,
        indicators={Indicator.on_time_handling: Ratio(numerator=3, denominator=4)},
        score=value,
        grade=None if value is None else "B",
    )


def test_on_time_rates_are_the_departments_scores_by_code() -> None:
    rows = on_time([score("WATER", 80.0), score("ROADS", None)])
    assert [r.code for r in rows] == ["ROADS", "WATER"]
    assert rows[1].handling == Ratio(numerator=3, denominator=4)
    assert rows[1].closure is None  # not in the score: no figure, not 0 %


def test_league_orders_by_score_ties_share_a_rank_and_unscored_come_last() -> None:
    rows = league([score("Z", None), score("B", 80.0), score("A", 92.5), score("C", 80.0)])
    assert [(r.rank, r.code) for r in rows] == [(1, "A"), (2, "B"), (2, "C"), (4, "Z")]
    assert rows[0].on_time_handling == 0.75 and rows[0].closure is None


def test_the_report_gathers_everything_and_its_tables_hold_every_row() -> None:
    period = Period.parse("2026-11", PACK.city.timezone)
    cases = [case("1", state="closed"), dispatched("2", DEADLINE), case("3", channel="hotline")]
    streets = [score("001", 70.0, Level.street)]
    report = build(cases, [score("WATER", 91.0)], streets, PACK, period, NOW)
    assert (report.cases, report.closed) == (3, 1)
    assert report.by_channel == {"supervisor": 2, "hotline": 1}
    shown = {t.slug: t for t in tables(report)}
    assert len(shown["grid_density"].rows) == len(PACK.grids)
    assert shown["league_departments"].rows[0][:2] == (1, "WATER")
    assert shown["league_streets"].rows[0][5] == "B"
    assert [r[0] for r in shown["longest_overdue"].rows] == ["2"]
    assert shown["longest_overdue"].rows[0][1:4] == (
        "私搭乱建 illegal structure",
        "东华门街道 Donghuamen",
        "北京自来水集团 Beijing Waterworks",
    )
