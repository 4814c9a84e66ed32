"""The handheld's field tabs (走访, 自处置): what the device's fields become at the grid
service and at intake, and which classes each offers."""

from __future__ import annotations

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from services.console.handheld import patrol, selfhandling, visits

PACK = load_city_pack(DEMO_CITY_PACK)
SENT = {
    "grid": "110101001002001",
    "at": "2026-12-06T10:00:00+08:00",
    "households": ["hh_1", "hh_2"],
    "point": {"lon": 116.4025, "lat": 39.92045},
    "findings": [
        {"type": "need", "text": "路灯不亮", "household": ""},
        {"type": "dispute", "text": "楼上漏水", "case": {"kind": "dispute", "class_code": "0101"}},
        "not a finding",
    ],
    "staff": "someone-else",  # the device does not say who visited: the token does
}


def test_a_visit_passes_on_its_doors_and_findings_only() -> None:
    assert visits.visit_body(SENT) == {
        "at": "2026-12-06T10:00:00+08:00",
        "households": ["hh_1", "hh_2"],
        "findings": [{"type": "need", "text": "路灯不亮"}, {"type": "dispute", "text": "楼上漏水"}],
    }


def test_a_finding_marked_becomes_a_case_at_the_visits_point() -> None:
    assert visits.cases_asked(SENT) == [
        (1, {"kind": "dispute", "class_code": "0101", "point": SENT["point"]})
    ]
    assert visits.cases_asked({"findings": [{"type": "need", "text": "x"}]}) == []


def test_a_finding_may_become_a_dispute_of_the_packs_types_or_a_catalogue_case() -> None:
    offered = visits.case_classes(PACK)
    assert PACK.sla.disputes is not None
    assert {f"dispute:{c}" for c in PACK.sla.disputes.types} <= set(offered)
    assert "event:0102" in offered
    assert visits.case_classes(None) == {}


def test_self_handling_offers_only_the_classes_the_pack_allows() -> None:
    offered = selfhandling.classes(PACK)
    allowed = {f"{c.kind}:{c.code}" for c in PACK.city.classes if c.self_handling}
    assert set(offered) == allowed and "event:0102" in offered
    assert "event:0101" not in offered  # 私搭乱建: not fixed on the spot


def test_self_handling_passes_on_intakes_fields_only() -> None:
    sent = {
        "kind": "event",
        "class_code": "0102",
        "description": "清理",
        "before": ["m1"],
        "after": ["m2"],
        "note": "",
        "channel": "website",
    }
    assert selfhandling.body(sent) == {
        "kind": "event",
        "class_code": "0102",
        "description": "清理",
        "before": ["m1"],
        "after": ["m2"],
    }


def test_a_patrol_point_is_passed_as_lon_and_lat() -> None:
    assert patrol.spot({"lon": 1.5, "lat": 2.5, "accuracy": 9}) == {"lon": 1.5, "lat": 2.5}
    assert patrol.spot("here") is None
