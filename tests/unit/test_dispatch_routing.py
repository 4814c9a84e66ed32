"""Ownership routing: each rule, their precedence, joint cases, and the routing file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from shapely.geometry import shape

from gridloop.citypack import CityPack, CityPackError, ComponentInstance, Grid, load_city_pack
from gridloop.citypack.owner import route
from gridloop.citypack.routing import LocationRule, Routing
from gridloop.config import DEMO_CITY_PACK
from schemas.events import Point
from services.dispatch.core import decide_dispatch

GRID = "110101001001002"  # street 001: office STREET-001
IN_BOTH = Point(lon=116.4015, lat=39.9205)  # inside the big square and the small one
IN_BIG_ONLY = Point(lon=116.4003, lat=39.9202)
OUTSIDE = Point(lon=116.4075, lat=39.9201)
LAMP = "1101010118000777"


def square(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


BIG = LocationRule(
    name="big park",
    owner="GREENING",
    assisting=["SANITATION"],
    geometry=square(116.4, 39.92, 116.402, 39.9209),
)
SMALL = LocationRule(
    name="small river bank",
    owner="WATER",
    classes=["event:0102", "component:0118"],
    geometry=square(116.401, 39.9201, 116.402, 39.9208),
)


def pack_with(
    components: Sequence[ComponentInstance] = (),
    rules: Sequence[LocationRule] = (),
    drop: Sequence[str] = (),
) -> CityPack:
    """The demo district with this test's inventory and location rules, and without the
    departments in `drop`."""
    demo = load_city_pack(DEMO_CITY_PACK)
    features = json.loads((DEMO_CITY_PACK / "grids.geojson").read_text(encoding="utf-8"))
    grids = [
        (Grid.model_validate(f["properties"]), shape(f["geometry"])) for f in features["features"]
    ]
    departments = [d for d in demo.city.departments if d.code not in drop]
    city = demo.city.model_copy(update={"departments": departments})
    return CityPack(city, grids, components, routing=Routing(list(rules)))


def lamp(owner: str = "ROADS", maintainer: str = "TRAFFIC-POLICE") -> ComponentInstance:
    return ComponentInstance(
        id=LAMP,
        class_code="0118",
        name="路灯 test lamp",
        lon=IN_BOTH.lon,
        lat=IN_BOTH.lat,
        grid=GRID,
        owner=owner,
        maintainer=maintainer,
    )


# --- rule 1: the component instance ----------------------------------------------------------


def test_the_component_maintainer_comes_first() -> None:
    pack = pack_with([lamp()], [BIG, SMALL])
    routed = route(pack, "component", "0118", GRID, IN_BOTH, LAMP)
    assert routed.department == "TRAFFIC-POLICE"
    assert routed.basis == "component"
    assert routed.rule == f"maintainer of component {LAMP} (路灯 test lamp)"
    assert routed.assisting == ()


def test_the_component_owner_when_the_maintainer_is_no_department() -> None:
    pack = pack_with([lamp(maintainer="PRIVATE-CONTRACTOR")], [SMALL])
    routed = route(pack, "component", "0118", GRID, IN_BOTH, LAMP)
    assert (routed.department, routed.basis) == ("ROADS", "component")
    assert routed.rule.startswith("owner of component")


def test_an_unknown_component_id_falls_through_to_the_location() -> None:
    pack = pack_with([lamp()], [SMALL])
    routed = route(pack, "component", "0118", GRID, IN_BOTH, "1101010118000999")
    assert (routed.department, routed.basis) == ("WATER", "location")


def test_a_component_whose_units_are_unknown_falls_through_to_the_location() -> None:
    pack = pack_with([lamp(owner="NOBODY", maintainer="NOBODY-EITHER")], [SMALL])
    assert route(pack, "component", "0118", GRID, IN_BOTH, LAMP).basis == "location"


# --- rule 2: location rules ------------------------------------------------------------------


def test_the_smallest_area_containing_the_point_wins() -> None:
    pack = pack_with(rules=[BIG, SMALL])
    routed = route(pack, "event", "0102", GRID, IN_BOTH)
    assert (routed.department, routed.basis) == ("WATER", "location")
    assert routed.rule == "location rule small river bank"
    # The order of the rules does not matter.
    assert route(pack_with(rules=[SMALL, BIG]), "event", "0102", GRID, IN_BOTH) == routed


def test_a_rule_covers_only_its_classes() -> None:
    pack = pack_with(rules=[BIG, SMALL])
    # 0505 illegal parking: not in the small rule's classes; the big one covers every class.
    routed = route(pack, "event", "0505", GRID, IN_BOTH)
    assert (routed.department, routed.rule) == ("GREENING", "location rule big park")


def test_a_location_rule_makes_a_joint_case() -> None:
    routed = route(pack_with(rules=[BIG]), "event", "0505", GRID, IN_BIG_ONLY)
    assert routed.department == "GREENING"
    assert routed.assisting == ("SANITATION",)


def test_unknown_assisting_departments_are_left_out() -> None:
    routed = route(pack_with(rules=[BIG], drop=["SANITATION"]), "event", "0505", GRID, IN_BOTH)
    assert (routed.department, routed.assisting) == ("GREENING", ())


def test_a_rule_whose_owner_is_unknown_is_skipped_for_the_next_smallest() -> None:
    pack = pack_with(rules=[BIG, SMALL], drop=["WATER"])
    assert route(pack, "event", "0102", GRID, IN_BOTH).department == "GREENING"
    alone = pack_with(rules=[SMALL], drop=["WATER"])
    assert route(alone, "event", "0102", GRID, IN_BOTH).basis == "class_default"


def test_outside_every_area_or_without_a_point_the_class_decides() -> None:
    pack = pack_with(rules=[BIG, SMALL])
    outside = route(pack, "event", "0102", "110101002002002", OUTSIDE)
    assert (outside.department, outside.basis) == ("SANITATION", "class_default")
    assert route(pack, "event", "0102", GRID, None).basis == "class_default"


# --- rules 3 and 4, and the whole precedence ------------------------------------------------


def test_precedence_from_most_to_least_specific() -> None:
    """Take away one rule after the other: component → location → class → street office."""
    steps = [
        (pack_with([lamp()], [SMALL]), "TRAFFIC-POLICE", "component"),
        (pack_with([], [SMALL]), "WATER", "location"),
        (pack_with([], []), "ROADS", "class_default"),
        (pack_with([], [], drop=["ROADS"]), "STREET-001", "street_office"),
    ]
    for pack, department, basis in steps:
        routed = route(pack, "component", "0118", GRID, IN_BOTH, LAMP)
        assert (routed.department, routed.basis) == (department, basis)


def test_the_dispatched_event_explains_the_decision() -> None:
    since = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    event = decide_dispatch(
        pack_with(rules=[BIG]), "C-1", 2, "event", "0505", GRID, since, IN_BIG_ONLY
    )
    assert event.department == "GREENING"
    assert event.assisting == ["SANITATION"]
    assert event.basis == "location"
    assert event.rule == "location rule big park"


# --- the routing file -----------------------------------------------------------------------


def test_the_demo_pack_has_a_park_and_allows_loopback_webhooks() -> None:
    routing = load_city_pack(DEMO_CITY_PACK).routing
    assert routing.webhooks.allow_private_addresses is True
    park = routing.match(116.407, 39.9205, "event", "0102")
    assert park is not None and park.owner == "GREENING"
    assert routing.match(116.407, 39.9205, "event", "0505") is None


def test_a_pack_without_a_routing_file_has_no_rules_and_the_strict_policy() -> None:
    demo = load_city_pack(DEMO_CITY_PACK)
    features = json.loads((DEMO_CITY_PACK / "grids.geojson").read_text(encoding="utf-8"))
    grids = [
        (Grid.model_validate(f["properties"]), shape(f["geometry"])) for f in features["features"]
    ]
    routing = CityPack(demo.city, grids).routing
    assert routing.rules == []
    assert routing.webhooks.allow_private_addresses is False


def _pack_dir(tmp_path: Path, routing: dict[str, Any]) -> Path:
    import shutil

    target = tmp_path / "pack"
    shutil.copytree(DEMO_CITY_PACK, target)
    (target / "routing.yaml").write_text(yaml.safe_dump(routing, allow_unicode=True), "utf-8")
    return target


def test_every_error_of_the_routing_file_is_listed(tmp_path: Path) -> None:
    bad = {
        "format": "gridloop-routing/1",
        "location_rules": [
            {"name": "a", "owner": "NOBODY", "assisting": ["NOBODY-2"], "geometry": BIG.geometry},
            {"name": "a", "owner": "WATER", "assisting": ["WATER"], "geometry": BIG.geometry},
        ],
    }
    with pytest.raises(CityPackError) as info:
        load_city_pack(_pack_dir(tmp_path, bad))
    errors = "\n".join(info.value.errors)
    assert "location_rules.0 (a): unknown department NOBODY" in errors
    assert "location_rules.0 (a): unknown department NOBODY-2" in errors
    assert "location_rules.1 (a): duplicate name" in errors
    assert "location_rules.1 (a): the owner WATER cannot also assist" in errors


def test_a_bad_geometry_or_class_is_refused(tmp_path: Path) -> None:
    line = {"type": "LineString", "coordinates": [[116.4, 39.92], [116.41, 39.93]]}
    bad = {
        "format": "gridloop-routing/1",
        "location_rules": [
            {"name": "a", "owner": "WATER", "geometry": line},
            {"name": "b", "owner": "WATER", "classes": ["0102"], "geometry": BIG.geometry},
        ],
    }
    with pytest.raises(CityPackError) as info:
        load_city_pack(_pack_dir(tmp_path, bad))
    errors = "\n".join(info.value.errors)
    assert "routing.yaml: location_rules.0.geometry" in errors
    assert "Polygon or MultiPolygon" in errors
    assert "routing.yaml: location_rules.1.classes.0" in errors
