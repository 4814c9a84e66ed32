"""民情分析: what residents raised by kind, channel and class against the month before, the
unresolved disputes by the office that holds them, and the report's section of it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from services.evaluation.report.demand import (
    Raised,
    VisitFinding,
    analyse,
    raised,
    unresolved_disputes,
)
from services.evaluation.report.model import Month, Period, build
from services.evaluation.report.tables import sections, tables

T0 = datetime(2026, 11, 3, 2, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def pack() -> CityPack:
    return load_city_pack(DEMO_CITY_PACK)


def case(
    n: int, channel: str, code: str = "0102", kind: str = "event", **more: Any
) -> dict[str, Any]:
    return {
        "_id": f"C{n}",
        "state": "filed",
        "channel": channel,
        "kind": kind,
        "class_code": code,
        "grid_code": "110101001001001",
        "reported_at": T0,
        "timeline": [{"type": "reported", "at": T0}],
    } | more


NOVEMBER = [
    case(1, "hotline"),
    case(2, "hotline"),
    case(3, "website"),
    case(4, "hotline", "0101", "component"),
    *(case(10 + i, "supervisor") for i in range(3)),  # found on patrol: not residents'
]
OCTOBER = [case(20, "hotline"), case(21, "website", "0505"), case(22, "website", "0505")]


def table(rows: list[Raised]) -> list[tuple[str, str, int, int | None, int | None]]:
    return [(r.by, r.code, r.this, r.last, r.change) for r in rows]


def test_what_residents_raised_by_type_against_the_month_before(pack: CityPack) -> None:
    assert table(raised(NOVEMBER, OCTOBER, pack)) == [
        ("kind", "event", 3, 3, 0),
        ("kind", "component", 1, 0, 1),
        ("channel", "hotline", 3, 1, 2),
        ("channel", "website", 1, 2, -1),
        ("class", "event 0102", 3, 1, 2),
        ("class", "component 0101", 1, 0, 1),
        ("class", "event 0505", 0, 2, -2),  # raised last month only
    ]
    named = {r.code: r.name for r in raised(NOVEMBER, OCTOBER, pack)}
    assert named["event 0102"] == "暴露垃圾 exposed garbage" and named["hotline"] == "热线 hotline"


def test_without_a_month_before_there_is_no_change(pack: CityPack) -> None:
    found = analyse(NOVEMBER, None, pack)
    assert (found.residents, found.residents_last) == (4, None)
    assert all(r.last is None and r.change is None for r in found.raised)


def test_unresolved_disputes_by_the_office_that_holds_them(pack: CityPack) -> None:
    disputes = [
        case(30, "hotline", "0101", "dispute", tier="street", tier_office="001"),
        case(31, "hotline", "0101", "dispute", tier="street", tier_office="001", reported_at=NOW),
        case(32, "hotline", "0101", "dispute"),  # still with its grid
        case(33, "hotline", "0101", "dispute", tier="street", tier_office="001", state="closed"),
        case(34, "hotline", "0102", "event", department="STREET-001"),  # no dispute
    ]
    # Until the catalogue has a dispute kind (the disputes' branch adds it): an empty table.
    assert unresolved_disputes(disputes, pack, ("component", "event")) == []
    found = unresolved_disputes(disputes, pack, ("component", "event", "dispute"))
    assert [(u.owner, u.disputes, u.oldest) for u in found] == [
        ("street 001", 2, T0),
        ("grid 110101001001001", 1, T0),
    ]
    # The pack's names of the street and of the grid.
    assert found[0].name == pack.streets["001"].name
    assert found[1].name == pack.grid_by_code["110101001001001"].name


def test_the_report_has_the_section_with_its_four_tables(pack: CityPack) -> None:
    period = Period.parse("2026-11", pack.city.timezone)
    visits = [VisitFinding("need", "需求 a need", 5, 3)]
    report = build(NOVEMBER, [], [], pack, period, NOW, Month(OCTOBER, []), visits=visits)
    [demand] = [s for s in sections(report) if s.slug == "demand"]
    assert [t.slug for t in demand.tables] == [
        "demand_by_type",
        "demand_by_class",
        "disputes_unresolved",
        "visit_findings",
    ]
    assert "4 reports raised by residents" in demand.note and "3 the month before" in demand.note
    assert demand.tables[2].rows == []  # no dispute kind yet: "none this month"
    assert demand.tables[3].rows == [("need", "需求 a need", 5, 3, "+2")]
    csv = {t.slug for t in tables(report)}
    assert {"demand_raised", "disputes_unresolved", "visit_findings"} <= csv
    # A month nobody raised anything in, with no disputes or visits: no section.
    quiet = build(NOVEMBER[4:], [], [], pack, period, NOW, Month([], []))
    assert "demand" not in [s.slug for s in sections(quiet)]
