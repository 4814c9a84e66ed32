"""The monthly report's short form (issue 18 item 8): the month against the month before,
problems repeated at one place, top classes, escalations, and the sections shown."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.scoring import Indicator, Level, PeriodKind, Ratio, Score
from services.evaluation.report.charts import cjk_family, label
from services.evaluation.report.demand import Demand, Raised
from services.evaluation.report.model import (
    Case,
    Change,
    Month,
    Period,
    build,
    by_class,
    escalated,
    escalation,
    repeated_places,
    summary,
    three_rates,
    top_classes,
)
from services.evaluation.report.tables import change_cells, sections, tables

PACK: CityPack = load_city_pack(DEMO_CITY_PACK)
GRID_A = "110101001001001"  # street 001 东华门, community 001001 多福巷
T0 = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)
LON, LAT = 116.4005, 39.9204  # in GRID_A
M_LON = 1 / (111_320 * 0.7666)  # a metre of longitude at 39.92° N, in degrees


def case(case_id: str, east_m: float = 0.0, **fields: Any) -> Case:
    doc: Case = {
        "_id": case_id,
        "state": "closed",
        "kind": "event",
        "class_code": "0102",  # 暴露垃圾 exposed garbage: duplicate radius 30 m
        "grid_code": GRID_A,
        "point": {"type": "Point", "coordinates": [LON + east_m * M_LON, LAT]},
        "reported_at": T0,
        "timeline": [{"type": "reported", "at": T0}],
    }
    return doc | fields


def street(code: str, **ratios: tuple[int, int]) -> Score:
    return Score(
        level=Level.street,
        entity=code,
        name=code,
        period="2026-11",
        period_kind=PeriodKind.month,
        cases=10,
        indicators={
            Indicator(k): Ratio(numerator=n, denominator=d) for k, (n, d) in ratios.items()
        },
        score=80.0,
        grade="B",
    )


def late(case_id: str, **fields: Any) -> Case:
    """Dispatched, its deadline passed a day ago, still unhandled."""
    extra: dict[str, Any] = {
        "state": "dispatched",
        "department": "SANITATION",
        "deadline": NOW - timedelta(days=1),
    }
    return case(case_id, **(extra | fields))


def test_the_month_against_the_month_before_counts_volumes_rates_overdue_and_escalations() -> None:
    escalated_sla = {"handle": {"light": "red", "tier": "street"}}
    this = Month(
        [case("n1"), case("n2", state="reported"), late("n3"), late("n4", sla=escalated_sla)],
        [street("001", closure=(3, 4), on_time_handling=(1, 2)), street("002", closure=(1, 4))],
    )
    last = Month([case("o1"), case("o2")], [street("001", closure=(2, 2))])
    found = {c.name: c for c in summary(this, last, NOW)}
    assert (found["上报 cases reported"].this, found["上报 cases reported"].last) == (4, 2)
    assert found["上报 cases reported"].change == 2
    assert (found["结案 closed or settled"].this, found["结案 closed or settled"].last) == (1, 2)
    closure = found["结案率 closure"]  # the streets' ratios summed: 4 of 8 against 2 of 2
    assert (closure.this, closure.last, closure.rate) == (0.5, 1.0, True)
    assert closure.change == pytest.approx(-0.5)
    handling = found["按期处置率 on-time handling"]  # nothing was due last month: no change
    assert (handling.this, handling.last, handling.change) == (0.5, None, None)
    assert (found["超期 overdue"].this, found["超期 overdue"].last) == (2, 0)
    assert (found["升级 escalated"].this, found["升级 escalated"].change) == (1, 1)


def test_a_change_is_printed_in_percentage_points_for_rates_and_signed_for_counts() -> None:
    assert change_cells(Change("closure", 0.969, 0.996, rate=True)) == ("96.9%", "99.6%", "-2.7 pp")
    assert change_cells(Change("reported", 300, 240)) == ("300", "240", "+60")
    assert change_cells(Change("on time", 0.5, None, rate=True)) == ("50.0%", "–", "–")


def test_the_month_before_of_january_is_december_of_the_year_before() -> None:
    period = Period.parse("2026-01", "Asia/Shanghai")
    assert period.previous() == Period.parse("2025-12", "Asia/Shanghai")


def test_one_class_reported_again_and_again_at_one_spot_is_a_repeated_place() -> None:
    cases = [
        case("g1", 0.0, reported_at=T0),
        case("g2", 5.0, reported_at=T0 + timedelta(days=3), state="dispatched"),
        case("g3", -8.0, reported_at=T0 + timedelta(days=9)),
        case("g4", 12.0, reported_at=T0 + timedelta(days=1), case_number="S0102-00004"),
        case("far", 120.0),  # 120 m east: another spot
        case("void", 2.0, state="voided"),  # not a city problem: not a report of it
        # Another class at the same spot is another problem: three of them, a place of its own.
        *(case(f"s{i}", i, class_code="0101") for i in range(3)),
        # Two only: not repeated enough.
        *(case(f"p{i}", i, class_code="0505") for i in range(2)),
    ]
    places = repeated_places(cases, PACK)
    assert [(p.class_key, p.case_ids) for p in places] == [
        ("event 0102", ("S0102-00004", "g1", "g2", "g3")),
        ("event 0101", ("s0", "s1", "s2")),
    ]
    garbage = places[0]
    assert garbage.class_name == "暴露垃圾 exposed garbage"  # names, not codes
    assert (garbage.street, garbage.community) == ("东华门街道 Donghuamen", "多福巷社区 Duofuxiang")
    assert (garbage.radius_m, garbage.still_open) == (30.0, 1)
    assert (garbage.first, garbage.last) == (T0, T0 + timedelta(days=9))


def test_cases_in_a_line_make_places_of_their_radius_not_one_long_chain() -> None:
    """Each 20 m from the next, within 30 m only of their neighbours: one place of three
    around the first case with the most neighbours, not a chain of five."""
    cases = [case(name, 20.0 * i) for i, name in enumerate("abcde")]
    [place] = repeated_places(cases, PACK)
    assert place.case_ids == ("a", "b", "c")
    assert repeated_places(cases, PACK, least=4) == []


def test_top_classes_are_named_and_the_rest_summed_as_others() -> None:
    cases = [
        *(case(f"a{i}", class_code="0102") for i in range(3)),
        *(case(f"b{i}", class_code="0101", state="reported") for i in range(2)),
        case("c", kind="component", class_code="0118"),
        case("d", class_code="0505"),
    ]
    shown = top_classes(by_class(cases, PACK), top=2)
    assert [(v.name, v.cases, v.closed) for v in shown] == [
        ("暴露垃圾 exposed garbage", 3, 3),
        ("私搭乱建 illegal structure", 2, 0),
        ("其他 others", 2, 2),
    ]
    assert top_classes(by_class(cases, PACK), top=4)[-1].name != "其他 others"


def test_a_chart_shows_whole_names_with_a_cjk_font_and_their_latin_part_without() -> None:
    assert label("上水井盖 water manhole cover", "0101", cjk="WenQuanYi Zen Hei") == (
        "上水井盖 water manhole cover"
    )
    assert label("上水井盖 water manhole cover", "0101", cjk=None) == "water manhole cover"
    assert label("多福巷", "001001", cjk=None) == "001001"
    assert cjk_family(["DejaVu Sans"]) is None
    assert cjk_family(["WenQuanYi Zen Hei", "Noto Sans CJK SC"]) == "Noto Sans CJK SC"


def test_the_highest_tier_a_case_reached_is_its_escalation() -> None:
    sla = {"verify": {"tier": "street"}, "handle": {"light": "red", "tier": "community"}}
    assert escalation(case("1", sla=sla)) == ("verify", "street")
    assert escalation(case("2", sla={"handle": {"light": "red"}})) is None
    rows = escalated(
        [
            case(
                "low", state="dispatched", department="WATER", sla={"handle": {"tier": "community"}}
            ),
            case("high-closed", sla={"handle": {"tier": "district"}}),
            case("high-open", state="dispatched", sla={"handle": {"tier": "district"}}),
        ],
        PACK,
    )
    assert [(r.case_id, r.tier, r.still_open) for r in rows] == [
        ("high-open", "district", True),
        ("high-closed", "district", False),
        ("low", "community", True),
    ]
    assert rows[2].department == "北京自来水集团 Beijing Waterworks"


def department(code: str, **ratios: tuple[int, int]) -> Score:
    return street(code, **ratios).model_copy(update={"level": Level.department})


def test_the_three_rates_are_shown_only_when_scores_carry_them() -> None:
    rates = (Indicator.response, Indicator.resolution, Indicator.satisfaction)
    scored = [department("WATER", response=(9, 10), satisfaction=(3, 4)), department("ROADS")]
    rows = three_rates(scored, [street("001")], rates)
    assert [(r.level, r.code) for r in rows] == [("department", "WATER")]
    assert rows[0].rates == {
        Indicator.response: Ratio(numerator=9, denominator=10),
        Indicator.satisfaction: Ratio(numerator=3, denominator=4),
    }
    # Until the callbacks' rates are named (model.THREE_RATES), the report has none.
    assert three_rates(scored, [street("001")]) == []


def test_the_report_shows_the_three_rates_and_demand_sections_only_when_it_has_them() -> None:
    period = Period.parse("2026-11", PACK.city.timezone)
    last = Month([case("o1")], [])
    report = build([case("n1"), case("n2")], [], [], PACK, period, NOW, last=last)
    slugs = [s.slug for s in sections(report)]
    assert slugs == ["summary", "league", "classes", "hotspots", "repeated", "overdue"]
    assert report.last_period == period.previous()
    fuller = replace(
        report,
        three_rates=three_rates([department("WATER", response=(1, 2))], [], [Indicator.response]),
        demand=Demand(raised=[Raised("kind", "event", "事件 event", 4, 1)], residents=4),
    )
    slugs = [s.slug for s in sections(fuller)]
    assert slugs[2] == "three_rates" and slugs[-1] == "demand"


def test_a_long_month_keeps_its_pages_the_tables_shown_are_short() -> None:
    """The old report printed every grid (1,652 in the demo's district). Whatever a month
    holds, a table the report shows has at most 15 rows (the leagues excepted: every street
    and department is ranked); the CSVs keep every row."""
    period = Period.parse("2026-11", PACK.city.timezone)
    many = [late(f"L{i:04d}", sla={"handle": {"tier": "street"}}) for i in range(400)]
    report = build(many, [], [], PACK, period, NOW, last=Month([], []))
    grids = [replace(report.grids[0], code=f"{i:015d}") for i in range(1652)]
    report = replace(report, grids=grids, hotspots=report.hotspots * 40)
    for section in sections(report):
        for table in section.tables:
            if section.slug != "league":
                assert len(table.rows) <= 15, (section.slug, table.slug, len(table.rows))
    full = {t.slug: t for t in tables(report)}
    assert len(full["grid_density"].rows) == 1652
    assert len(full["longest_overdue"].rows) == len(full["escalated"].rows) == 400
    overdue = next(s for s in sections(report) if s.slug == "overdue")
    assert "the first 15 of 400, all in longest_overdue.csv" in overdue.note
