"""The city pack: the demo loads, points are located deterministically, and a broken pack is
refused with every error listed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridloop.citypack import CityPack, CityPackError, load_city_pack
from gridloop.config import DEMO_CITY_PACK

DEMO = DEMO_CITY_PACK

# Demo grids are 0.001° wide cells in one row: x from 116.400 (grid …001001) to 116.408,
# y from 39.9200 to 39.9209.
G1, G2, G3 = "110101001001001", "110101001001002", "110101001002001"
LAST = "110101002002002"
BOW_TIE = [
    [[116.41, 39.93], [116.411, 39.931], [116.411, 39.93], [116.41, 39.931], [116.41, 39.93]]
]


def _demo_city() -> dict[str, Any]:
    raw = yaml.safe_load((DEMO / "city.yaml").read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def _demo_grids() -> dict[str, Any]:
    raw = json.loads((DEMO / "grids.geojson").read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def _write(root: Path, city: dict[str, Any], grids: dict[str, Any]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), encoding="utf-8")
    (root / "grids.geojson").write_text(json.dumps(grids, ensure_ascii=False), encoding="utf-8")
    return root


def _errors(root: Path) -> list[str]:
    with pytest.raises(CityPackError) as info:
        load_city_pack(root)
    assert info.value.errors, "a refused pack must say why"
    assert str(len(info.value.errors)) in str(info.value)
    return info.value.errors


def _has(errors: list[str], *fragments: str) -> bool:
    return any(all(f in e for f in fragments) for e in errors)


@pytest.fixture(scope="module")
def demo() -> CityPack:
    return load_city_pack(DEMO)


# --- the demo pack -------------------------------------------------------------------------


def test_demo_pack_loads(demo: CityPack) -> None:
    assert demo.city.district.code == "110101"
    assert len(demo.grids) == 8
    assert [g.code for g in demo.grids][:2] == [G1, G2]
    assert set(demo.streets) == {"001", "002"}
    assert {"WATER", "ROADS", "SANITATION", "STREET-001", "STREET-002"} <= set(demo.departments)
    water_cover = demo.classes[("component", "0101")]
    assert water_cover.owner == "WATER"
    assert water_cover.handle_limit == timedelta(hours=4)
    # components and events have separate code spaces: 0101 exists in both
    assert demo.classes[("event", "0101")].owner == "STREET-001"
    assert demo.classes[("event", "0401")].clock == "natural"


def test_demo_pack_loads_from_a_string_path() -> None:
    assert len(load_city_pack(str(DEMO)).grids) == 8


def test_demo_secrets_are_whsec() -> None:
    pack = load_city_pack(DEMO)
    hooks = [d.webhook for d in pack.departments.values()]
    assert all(h is not None and h.secret.startswith("whsec_") for h in hooks)


# --- locate --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lon", "lat", "code"),
    [
        (116.4005, 39.9205, G1),
        (116.4015, 39.9205, G2),
        (116.4025, 39.9201, G3),
        (116.4075, 39.9208, LAST),
    ],
)
def test_locate_inside(demo: CityPack, lon: float, lat: float, code: str) -> None:
    grid = demo.locate(lon, lat)
    assert grid is not None
    assert grid.code == code


@pytest.mark.parametrize(
    ("lon", "lat"),
    [
        (116.3995, 39.9205),  # west of the first grid
        (116.4085, 39.9205),  # east of the last
        (116.4005, 39.9210),  # north
        (116.4005, 39.9199),  # south
        (0.0, 0.0),
    ],
)
def test_locate_outside(demo: CityPack, lon: float, lat: float) -> None:
    assert demo.locate(lon, lat) is None


def test_locate_on_a_shared_edge_takes_the_smallest_code(demo: CityPack) -> None:
    grid = demo.locate(116.401, 39.9205)  # the edge between G1 and G2
    assert grid is not None
    assert grid.code == G1
    grid = demo.locate(116.402, 39.9203)  # the edge between G2 and G3
    assert grid is not None
    assert grid.code == G2


def test_locate_on_a_vertex(demo: CityPack) -> None:
    shared = demo.locate(116.401, 39.92)  # a corner of G1 and G2
    assert shared is not None
    assert shared.code == G1
    corner = demo.locate(116.408, 39.9209)  # the outer corner of the last grid only
    assert corner is not None
    assert corner.code == LAST


def test_locate_on_an_edge_does_not_depend_on_load_order(tmp_path: Path) -> None:
    grids = _demo_grids()
    grids["features"] = list(reversed(grids["features"]))
    pack = load_city_pack(_write(tmp_path / "reversed", _demo_city(), grids))
    assert pack.grids[0].code == LAST  # really loaded in the other order
    for lon, lat, code in [(116.401, 39.9205, G1), (116.402, 39.92, G2), (116.4015, 39.92, G2)]:
        grid = pack.locate(lon, lat)
        assert grid is not None
        assert grid.code == code


# --- broken packs --------------------------------------------------------------------------


def test_a_copy_of_the_demo_pack_loads(tmp_path: Path) -> None:
    """The helpers themselves write a valid pack: the errors below come from the mutations."""
    pack = load_city_pack(_write(tmp_path / "copy", _demo_city(), _demo_grids()))
    assert [g.code for g in pack.grids] == [g.code for g in load_city_pack(DEMO).grids]


def _break_cross_references(city: dict[str, Any], grids: dict[str, Any]) -> None:
    """Five different errors that only show up when the files are checked together."""
    city["classes"][0]["owner"] = "NO-SUCH-DEPT"  # component 0101
    features = grids["features"]
    features[1]["properties"]["code"] = G1  # duplicate of feature 0
    features[2]["properties"]["code"] = "110102001002001"  # district 110102, not 110101
    features[3]["properties"]["community"] = "002001"  # code says 001002
    features[4]["geometry"]["coordinates"] = BOW_TIE


def _assert_cross_reference_errors(errors: list[str]) -> None:
    assert _has(errors, "class 0101", "unknown owner department NO-SUCH-DEPT"), errors
    assert _has(errors, f"grid {G1}", "duplicate code"), errors
    assert _has(errors, "grid 110102001002001", "not in district 110101"), errors
    assert _has(errors, "grid 110101001002002", "community 002001"), errors
    assert _has(errors, "feature 4", "110101002001001", "not a valid polygon"), errors


def test_broken_cross_references_are_all_listed(tmp_path: Path) -> None:
    city, grids = _demo_city(), _demo_grids()
    _break_cross_references(city, grids)
    errors = _errors(_write(tmp_path / "broken", city, grids))
    _assert_cross_reference_errors(errors)
    assert len(errors) == 5, errors


def test_broken_pack_lists_every_error_including_a_bad_field(tmp_path: Path) -> None:
    city, grids = _demo_city(), _demo_grids()
    _break_cross_references(city, grids)
    city["classes"][1]["handle_limit"] = "soon"  # not a duration
    errors = _errors(_write(tmp_path / "broken", city, grids))
    assert _has(errors, "city.yaml", "classes.1.handle_limit"), errors
    _assert_cross_reference_errors(errors)


def test_bad_fields_in_city_yaml_are_all_listed(tmp_path: Path) -> None:
    city = _demo_city()
    city["classes"][1]["handle_limit"] = "soon"
    city["district"]["code"] = "1101"  # 6 digits required
    city["departments"][0]["webhook"]["secret"] = "not-a-secret"
    city["surprise"] = True  # unknown field
    errors = _errors(_write(tmp_path / "fields", city, _demo_grids()))
    assert _has(errors, "city.yaml", "classes.1.handle_limit"), errors
    assert _has(errors, "city.yaml", "district.code"), errors
    assert _has(errors, "city.yaml", "departments.0.webhook.secret"), errors
    assert _has(errors, "city.yaml", "surprise"), errors


def test_bad_fields_in_both_files_are_all_listed(tmp_path: Path) -> None:
    city, grids = _demo_city(), _demo_grids()
    city["classes"][1]["handle_limit"] = "soon"
    grids["features"][5]["properties"]["code"] = "11010100200100X"
    grids["features"][6]["geometry"]["coordinates"] = BOW_TIE
    errors = _errors(_write(tmp_path / "both", city, grids))
    assert _has(errors, "city.yaml", "classes.1.handle_limit"), errors
    assert _has(errors, "grids.geojson: feature 5", "code"), errors
    assert _has(errors, "grids.geojson: feature 6", "not a valid polygon"), errors


def test_unknown_street_office_and_community_street(tmp_path: Path) -> None:
    city = _demo_city()
    city["streets"][1]["office"] = "STREET-999"
    city["communities"].append({"code": "009001", "name": "nowhere"})
    errors = _errors(_write(tmp_path / "streets", city, _demo_grids()))
    assert _has(errors, "street 002", "unknown office department STREET-999"), errors
    assert _has(errors, "community 009001", "unknown street 009"), errors
    assert len(errors) == 2, errors


def test_duplicate_class_code_within_a_kind(tmp_path: Path) -> None:
    city = _demo_city()
    city["classes"].append(dict(city["classes"][0]))
    errors = _errors(_write(tmp_path / "dup", city, _demo_grids()))
    assert _has(errors, "component class 0101", "duplicate code"), errors


def test_missing_or_unparsable_files(tmp_path: Path) -> None:
    errors = _errors(tmp_path / "nothing-here")
    assert _has(errors, "city.yaml", "cannot read"), errors
    assert _has(errors, "grids.geojson"), errors

    root = _write(tmp_path / "garbled", _demo_city(), _demo_grids())
    (root / "city.yaml").write_text("format: [unclosed\n", encoding="utf-8")
    (root / "grids.geojson").write_text("{not json", encoding="utf-8")
    errors = _errors(root)
    assert _has(errors, "city.yaml", "not YAML"), errors
    assert _has(errors, "grids.geojson", "not a GeoJSON FeatureCollection"), errors
