"""The SLA part of the city pack: the demo's terms, the one computation of a deadline, and
every error of a broken sla.yaml (listed by `load_city_pack` with the other files')."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridloop.citypack import CityPackError, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from schemas.events import Stage

PACK = load_city_pack(DEMO_CITY_PACK)
H = timedelta(hours=1)


def pack_copy(tmp_path: Path, sla: dict[str, Any] | None) -> Path:
    """The demo pack with this `sla.yaml` (none at all for None)."""
    pack = tmp_path / "pack"
    shutil.copytree(DEMO_CITY_PACK, pack)
    if sla is None:
        (pack / "sla.yaml").unlink()
    else:
        (pack / "sla.yaml").write_text(yaml.safe_dump(sla, allow_unicode=True), "utf-8")
    return pack


def demo_sla() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((DEMO_CITY_PACK / "sla.yaml").read_text("utf-8"))
    return raw


def test_the_demo_terms_per_class_and_urgency() -> None:
    policy = PACK.sla
    garbage = policy.terms("event", "0102", "normal")
    assert garbage.clock_kind == "working"
    assert garbage.limits[Stage.handle] == 4 * H
    assert garbage.limits[Stage.explain] == 7 * H  # P1D: one working day of office hours
    assert [r.tier for r in garbage.ladder] == ["community", "street", "district", "city"]
    assert garbage.ladder[1].after == 7 * H
    urgent = policy.terms("event", "0102", "urgent")
    assert urgent.limits[Stage.handle] == 2 * H
    assert [r.tier for r in urgent.ladder] == ["street", "district", "city"]
    collapse = policy.terms("event", "0401", None)
    assert collapse.clock_kind == "natural"
    assert collapse.limits[Stage.handle] == H
    lamp = policy.terms("component", "0118", None)
    assert lamp.limits[Stage.handle] == 2 * 7 * H  # the class's P2D in working days


def test_tier_offices() -> None:
    policy = PACK.sla
    grid = "110101002001003"
    assert policy.office("community", grid) == "COMMUNITY-002001"
    assert policy.office("street", grid) == "STREET-002"
    assert policy.office("district", grid) == "DISTRICT-110101"
    assert policy.office("city", None) == "CITY-110000"
    for tier in ("community", "street", "district", "city"):
        assert policy.office(tier, grid) in PACK.departments


def test_a_pack_without_sla_yaml_times_verification_and_handling(tmp_path: Path) -> None:
    """city.yaml's `verify_limit` (the verification task's due time) and the class's
    `handle_limit`: the stages whose deadline someone is shown."""
    policy = load_city_pack(pack_copy(tmp_path, None)).sla
    terms = policy.terms("event", "0102", None)
    assert terms.limits == {Stage.verify: 2 * H, Stage.handle: 4 * H}
    assert terms.ladder == ()


def test_sla_yaml_overrides_the_verify_limit_of_city_yaml() -> None:
    assert PACK.sla.terms("event", "0102", "urgent").limits[Stage.verify] == H / 2
    assert PACK.sla.terms("event", "0401", None).limits[Stage.verify] == H / 4


def test_a_city_supplied_year(tmp_path: Path) -> None:
    raw = demo_sla()
    raw["calendar"] = {2027: {"holidays": [date(2027, 1, 1)], "workdays": []}}
    policy = load_city_pack(pack_copy(tmp_path, raw)).sla
    assert not policy.calendar.is_working_day(date(2027, 1, 1))
    assert 2027 in policy.calendar.years


def test_every_error_is_listed(tmp_path: Path) -> None:
    raw = demo_sla()
    raw["offices"]["district"] = "NOWHERE"
    raw["offices"]["community"]["009009"] = "COMMUNITY-001001"
    raw["rules"].append({"match": {"kind": "event", "code": "0999"}, "limits": {"handle": "PT1H"}})
    raw["rules"].append(
        {"ladder": [{"tier": "city", "after": "PT0S"}, {"tier": "street", "after": "PT1H"}]}
    )
    raw["calendar"] = {2027: {"holidays": [date(2028, 1, 1)]}}
    with pytest.raises(CityPackError) as caught:
        load_city_pack(pack_copy(tmp_path, raw))
    errors = "\n".join(caught.value.errors)
    for expected in (
        "offices.district: unknown department NOWHERE",
        "unknown community 009009",
        "unknown event class 0999",
        "tiers must go up",
        "2028-01-01 is not in 2027",
    ):
        assert expected in errors, errors


def test_office_hours_must_be_sensible(tmp_path: Path) -> None:
    with pytest.raises(CityPackError) as caught:
        load_city_pack(
            pack_copy(tmp_path, {"format": "gridloop-sla/1", "office_hours": [["12:00", "09:00"]]})
        )
    assert "office_hours" in "\n".join(caught.value.errors)
