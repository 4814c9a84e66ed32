"""The city pack: the demo loads, points are located deterministically, and a broken pack is
refused with every error listed."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely.geometry
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

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
    root = _write(tmp_path / "reversed", _demo_city(), grids)
    assert LAST in (root / "grids.geojson").read_text(encoding="utf-8")[:200]  # really reversed
    pack = load_city_pack(root)
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
    assert _has(errors, "grids.geojson:", "feature 5", "code"), errors
    assert _has(errors, "grids.geojson:", "feature 6", "not a valid polygon"), errors


def test_canned_phrases_are_checked_like_the_rest(demo: CityPack, tmp_path: Path) -> None:
    assert "重复上报" in demo.city.phrases["void"]
    city = _demo_city()
    city["phrases"] = {"void": ["", "ok"], "approve": ["not an action that takes one"]}
    errors = _errors(_write(tmp_path / "phrases", city, _demo_grids()))
    assert _has(errors, "city.yaml", "phrases.void.0"), errors  # blank
    assert _has(errors, "city.yaml", "phrases.approve"), errors  # no such action


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


# --- format 2: lines, geometry, overlaps, the component inventory ---------------------------

COMPONENT_HEADER = "id,class_code,name,lon,lat,grid,owner,maintainer,status\n"
COVER = "1101010101000001,0101,cover,116.4005,39.9204,110101001001001,WATER,WATER,intact\n"


def _write_lines(root: Path, city_text: str, grids: dict[str, Any], csv: str | None) -> Path:
    """A pack written as text with one value per line, so line numbers can be asserted."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "city.yaml").write_text(city_text, encoding="utf-8")
    (root / "grids.geojson").write_text(json.dumps(grids, indent=1), encoding="utf-8")
    if csv is not None:
        (root / "components.csv").write_text(csv, encoding="utf-8")
    return root


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_demo_components_are_loaded(demo: CityPack) -> None:
    assert len(demo.components) == 8
    cover = demo.component("1101010101000001")
    assert cover is not None
    assert (cover.class_code, cover.grid, cover.owner) == ("0101", G1, "WATER")
    assert cover.status == "intact"  # written 完好 in the file
    tree = demo.components["1101010402000001"]
    assert (tree.owner, tree.maintainer) == ("GREENING", "STREET-002")
    assert demo.components["1101010305000002"].status == "removed"  # 移除
    for c in demo.components.values():  # every component lies in its own grid
        assert demo.polygon(c.grid).covers(shapely.geometry.Point(c.lon, c.lat))


def test_demo_supervisors_majors_and_policy(demo: CityPack) -> None:
    assert demo.city.format == "gridloop-citypack/2"
    assert demo.supervised_by("SUP-0001") == [G1, G2]
    assert demo.supervised_by("nobody") == []
    assert demo.majors[("component", "01")].name.startswith("公用设施")
    assert demo.city.intake.auto_file is True
    assert demo.city.intake.verify_limit == timedelta(hours=2)
    garbage = demo.classes[("event", "0102")]
    assert garbage.duplicate_radius_m == 30
    assert demo.classes[("event", "0505")].duplicate_radius_m == 50  # the default


def test_format_1_packs_still_load(tmp_path: Path) -> None:
    city = _demo_city()
    city["format"] = "gridloop-citypack/1"
    for key in ("majors", "intake", "timezone"):
        city.pop(key)
    pack = load_city_pack(_write(tmp_path / "v1", city, _demo_grids()))
    assert pack.city.intake.auto_file is True  # the default policy


def test_an_unknown_format_is_named(tmp_path: Path) -> None:
    city = _demo_city()
    city["format"] = "gridloop-citypack/9"
    errors = _errors(_write(tmp_path / "v9", city, _demo_grids()))
    assert _has(errors, "city.yaml:", "format", "gridloop-citypack/9", "gridloop-citypack/2")


def test_errors_carry_the_line_in_every_file(tmp_path: Path) -> None:
    city_text = (DEMO / "city.yaml").read_text(encoding="utf-8")
    city_text = city_text.replace("handle_limit: P2D", "handle_limit: soon")  # class 0118
    grids = _demo_grids()
    grids["features"][2]["properties"]["code"] = "11010100100200X"
    csv = COMPONENT_HEADER + COVER + "1101010101000009,0101,cover,116.4005,39.9204,x,W,W,ok\n"
    root = _write_lines(tmp_path / "lines", city_text, grids, csv)
    errors = _errors(root)
    limit_line = _line_of(city_text, "handle_limit: soon")
    assert _has(errors, f"city.yaml:{limit_line}: classes.1.handle_limit"), errors
    grids_text = (root / "grids.geojson").read_text(encoding="utf-8")
    feature_line = _line_of(grids_text, "11010100100200X") - 3  # {, type, properties, code
    assert _has(errors, f"grids.geojson:{feature_line}: feature 2", "code"), errors
    assert _has(errors, "components.csv:3: component 1101010101000009", "grid"), errors
    assert _has(errors, "components.csv:3:", "status"), errors


def test_a_polygon_that_does_not_close_is_refused(tmp_path: Path) -> None:
    grids = _demo_grids()
    ring = grids["features"][1]["geometry"]["coordinates"][0]
    ring[-1] = [116.40101, 39.92]  # near, not equal, to the first position
    grids["features"][3]["geometry"]["coordinates"][0] = ring[:3]  # three positions
    errors = _errors(_write(tmp_path / "open", _demo_city(), grids))
    assert _has(errors, "feature 1", G2, "does not close"), errors
    assert _has(errors, "feature 3", "fewer than 4 positions"), errors
    assert len(errors) == 2, errors


def test_overlapping_grids_are_refused_but_shared_edges_are_not(tmp_path: Path) -> None:
    grids = _demo_grids()
    # Grid 2 reaches 0.0005° into grid 3 (its east edge moved east).
    ring = grids["features"][1]["geometry"]["coordinates"][0]
    for position in ring:
        if position[0] == 116.402:
            position[0] = 116.4025
    errors = _errors(_write(tmp_path / "overlap", _demo_city(), grids))
    assert _has(errors, f"grid {G3} overlaps grid {G2}"), errors
    assert len(errors) == 1, errors  # the seven shared edges are no overlap


def test_a_grid_inside_another_is_an_overlap(tmp_path: Path) -> None:
    grids = _demo_grids()
    inner = json.loads(json.dumps(grids["features"][0]))
    inner["properties"]["code"] = "110101001001003"
    inner["geometry"]["coordinates"] = [
        [[116.4002, 39.9202], [116.4004, 39.9202], [116.4004, 39.9204], [116.4002, 39.9202]]
    ]
    grids["features"].append(inner)
    errors = _errors(_write(tmp_path / "nested", _demo_city(), grids))
    assert _has(errors, "grid 110101001001003 overlaps grid 110101001001001"), errors


def test_a_geometry_other_than_a_polygon_is_refused(tmp_path: Path) -> None:
    grids = _demo_grids()
    grids["features"][0]["geometry"] = {"type": "Point", "coordinates": [116.4, 39.92]}
    errors = _errors(_write(tmp_path / "point", _demo_city(), grids))
    assert _has(errors, "feature 0", "Point, not a Polygon"), errors


def test_unknown_major_class(tmp_path: Path) -> None:
    city = _demo_city()
    city["classes"].append(
        {"kind": "event", "code": "0901", "name": "x", "owner": "ROADS", "handle_limit": "P1D"}
    )
    errors = _errors(_write(tmp_path / "major", city, _demo_grids()))
    assert _has(errors, "event class 0901", "unknown major class 09"), errors
    assert len(errors) == 1, errors


def _with_components(tmp_path: Path, rows: str, city: dict[str, Any] | None = None) -> Path:
    root = _write(tmp_path / "inventory", city or _demo_city(), _demo_grids())
    (root / "components.csv").write_text(COMPONENT_HEADER + rows, encoding="utf-8")
    return root


def test_every_component_error_is_listed(tmp_path: Path) -> None:
    rows = (
        COVER
        + COVER  # line 3: duplicate id
        # line 4: outside its grid (in G2)
        + "1101010101000003,0101,cover,116.4015,39.9204,110101001001001,WATER,WATER,intact\n"
        # line 5: outside every grid
        + "1101010101000004,0101,cover,116.3,39.9,110101001001001,WATER,WATER,intact\n"
        # line 6: unknown owner and maintainer
        + "1101010101000005,0101,cover,116.4005,39.9204,110101001001001,ACME,NOBODY,intact\n"
        # line 7: id says 0118, class says 0101
        + "1101010118000006,0101,cover,116.4005,39.9204,110101001001001,WATER,WATER,intact\n"
        # line 8: unknown component class (0999 exists nowhere)
        + "1101010999000007,0999,thing,116.4005,39.9204,110101001001001,WATER,WATER,intact\n"
        # line 9: unknown grid
        + "1101010101000008,0101,cover,116.4005,39.9204,110101001001009,WATER,WATER,intact\n"
        # line 10: another district
        + "1101020101000009,0101,cover,116.4005,39.9204,110101001001001,WATER,WATER,intact\n"
        # line 11: a 17-digit id with a 4-digit class code
        + "11010101010000010,0101,cover,116.4005,39.9204,110101001001001,WATER,WATER,intact\n"
        # line 12: bad fields
        + "12345,0101,cover,east,39.9204,110101001001001,WATER,WATER,broken\n"
    )
    errors = _errors(_with_components(tmp_path, rows))
    expected = [
        (3, "duplicate id (first on line 2)"),
        (4, f"outside its grid 110101001001001: it lies in grid {G2}"),
        (5, "outside its grid 110101001001001: it lies outside every grid"),
        (6, "unknown owner department ACME"),
        (6, "unknown maintainer department NOBODY"),
        (7, "id says class 0118, class_code says 0101"),
        (8, "unknown component class 0999"),
        (9, "unknown grid 110101001001009"),
        (10, "not in district 110101"),
        (11, "a 17-digit id needs a 5-digit class code"),
        (12, "id:"),
        (12, "lon:"),
        (12, "status:"),
    ]
    for line, fragment in expected:
        assert _has(errors, f"components.csv:{line}:", fragment), (line, fragment, errors)
    assert len(errors) == len(expected), errors


def test_a_17_digit_inventory_with_2_plus_3_class_codes(tmp_path: Path) -> None:
    city = _demo_city()
    city["classes"].append(
        {"kind": "component", "code": "01010", "name": "井盖 (GB/T 47678.5)", "owner": "WATER",
         "handle_limit": "PT4H"}
    )  # fmt: skip
    row = "11010101010000001,01010,cover,116.4005,39.9204,110101001001001,WATER,ROADS,破损\n"
    pack = load_city_pack(_with_components(tmp_path, row, city))
    component = pack.components["11010101010000001"]
    assert (component.class_code, component.maintainer, component.status) == (
        "01010",
        "ROADS",
        "damaged",
    )


def test_a_components_file_without_its_columns(tmp_path: Path) -> None:
    root = _write(tmp_path / "columns", _demo_city(), _demo_grids())
    (root / "components.csv").write_text("id,name\n1,x\n", encoding="utf-8")
    errors = _errors(root)
    assert _has(errors, "components.csv:1:", "missing column(s): class_code, lon"), errors


def test_a_component_on_its_grid_edge_is_inside(tmp_path: Path) -> None:
    row = "1101010101000001,0101,cover,116.401,39.9205,110101001001002,WATER,WATER,intact\n"
    pack = load_city_pack(_with_components(tmp_path, row))  # on the G1/G2 edge, says G2
    assert pack.components["1101010101000001"].grid == G2


# --- 14-digit grids, holes, bulk location -----------------------------------------------------


def test_a_pack_of_14_digit_grids_cjt_213(tmp_path: Path) -> None:
    grids = _demo_grids()
    for feature in grids["features"]:
        code = feature["properties"]["code"]
        feature["properties"]["code"] = code[:12] + code[13:]  # grid serial of 2 digits
    pack = load_city_pack(_write(tmp_path / "cjt213", _demo_city(), grids))
    grid = pack.locate(116.4015, 39.9205)
    assert grid is not None
    assert grid.code == "11010100100102"
    assert len(grid.code) == 14


HOLE_CITY_GRIDS: dict[str, Any] = {
    "type": "FeatureCollection",
    "features": [
        {  # a ring of grid around a courtyard
            "type": "Feature",
            "properties": {"code": "110101001001005", "community": "001001"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[116.5, 39.9], [116.51, 39.9], [116.51, 39.91], [116.5, 39.91], [116.5, 39.9]],
                    [[116.502, 39.902], [116.502, 39.908], [116.508, 39.908], [116.508, 39.902],
                     [116.502, 39.902]],
                ],
            },
        },
        {  # a grid filling half of the courtyard
            "type": "Feature",
            "properties": {"code": "110101001001006", "community": "001001"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[116.502, 39.902], [116.505, 39.902], [116.505, 39.908], [116.502, 39.908],
                     [116.502, 39.902]]
                ],
            },
        },
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def holed(tmp_path_factory: pytest.TempPathFactory) -> CityPack:
    root = tmp_path_factory.mktemp("holed")
    return load_city_pack(_write(root, _demo_city(), HOLE_CITY_GRIDS))


@pytest.mark.parametrize(
    ("lon", "lat", "code"),
    [
        (116.501, 39.905, "110101001001005"),  # in the ring
        (116.507, 39.905, None),  # in the part of the hole no grid fills
        (116.503, 39.905, "110101001001006"),  # in the grid filling the hole
        (116.508, 39.905, "110101001001005"),  # on the hole's edge: the ring's boundary
        (116.502, 39.905, "110101001001005"),  # on an edge of both: the smaller code
        (116.502, 39.902, "110101001001005"),  # on a vertex of both
        (116.505, 39.905, "110101001001006"),  # on the filler's edge inside the hole
        (116.49, 39.905, None),  # outside
    ],
)
def test_locate_around_a_hole(holed: CityPack, lon: float, lat: float, code: str | None) -> None:
    grid = holed.locate(lon, lat)
    assert (grid.code if grid else None) == code


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=90).map(lambda n: round(116.3995 + n * 0.0001, 4)),
            st.integers(min_value=-2, max_value=11).map(lambda n: round(39.92 + n * 0.0001, 4)),
        ),
        min_size=1,
        max_size=40,
    )
)
@settings(max_examples=60, deadline=None)
def test_bulk_location_agrees_with_single_location(points: list[tuple[float, float]]) -> None:
    """On a lattice that hits edges, vertices and the outside often."""
    pack = _DEMO_PACK
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    assert pack.locate_many(lons, lats) == [pack.locate(lon, lat) for lon, lat in points]


_DEMO_PACK = load_city_pack(DEMO)


def test_city_check_lists_every_error_and_exits_non_zero(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from system.cli import app

    city = _demo_city()
    city["classes"][0]["owner"] = "NO-SUCH-DEPT"
    row = "1101010101000001,0101,cover,116.3,39.9,110101001001001,WATER,WATER,intact\n"
    root = _with_components(tmp_path, row, city)
    result = CliRunner().invoke(app, ["city", "check", str(root)])
    assert result.exit_code == 1
    assert "unknown owner department NO-SUCH-DEPT" in result.output
    assert "components.csv:2: component 1101010101000001" in result.output
    assert "2 error(s)" in result.output
    ok = CliRunner().invoke(app, ["city", "check", str(DEMO)])
    assert ok.exit_code == 0
    assert "8 components, 2 location rules, 5 SLA rules" in ok.output


# --- routing.yaml and sla.yaml are parts of the pack ---------------------------------------


def test_the_demo_pack_carries_its_routing_and_sla_policy(demo: CityPack) -> None:
    assert [r.owner for r in demo.routing.rules] == ["GREENING", "WATER"]
    assert demo.routing.webhooks.allow_private_addresses is True
    assert demo.sla.urgencies == {"normal", "urgent"}
    assert demo.sla.office("district", None) == "DISTRICT-110101"


def _demo_copy(tmp_path: Path) -> Path:
    root = tmp_path / "pack"
    shutil.copytree(DEMO, root)
    return root


def _edit_yaml(path: Path, edit: Any) -> None:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(raw)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")


def test_errors_of_every_file_are_listed_together(tmp_path: Path) -> None:
    root = _demo_copy(tmp_path)
    _edit_yaml(root / "city.yaml", lambda c: c["classes"][0].update(owner="NO-SUCH-DEPT"))
    _edit_yaml(root / "routing.yaml", lambda r: r["location_rules"][0].update(owner="NO-SUCH-BODY"))
    _edit_yaml(root / "sla.yaml", lambda s: s["offices"].update(city="NO-SUCH-OFFICE"))
    errors = _errors(root)
    assert _has(errors, "city.yaml", "unknown owner department NO-SUCH-DEPT"), errors
    assert _has(errors, "routing.yaml: location_rules.0", "unknown department NO-SUCH-BODY")
    assert _has(errors, "sla.yaml: offices.city: unknown department NO-SUCH-OFFICE"), errors
    assert len(errors) == 3, errors


def test_a_broken_city_yaml_does_not_hide_the_other_files_errors(tmp_path: Path) -> None:
    root = _demo_copy(tmp_path)
    (root / "city.yaml").write_text("district: [unclosed\n", encoding="utf-8")
    _edit_yaml(root / "routing.yaml", lambda r: r.update(format="gridloop-routing/9"))
    _edit_yaml(root / "sla.yaml", lambda s: s.update(warning_at=1.5))
    errors = _errors(root)
    assert _has(errors, "city.yaml", "not YAML"), errors
    assert _has(errors, "routing.yaml: format"), errors
    assert _has(errors, "sla.yaml: warning_at"), errors


def test_an_sla_yaml_that_is_not_yaml_is_named(tmp_path: Path) -> None:
    root = _demo_copy(tmp_path)
    (root / "sla.yaml").write_text("rules: [unclosed\n", encoding="utf-8")
    assert _has(_errors(root), "sla.yaml: not YAML")


def test_city_check_validates_sla_yaml(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from system.cli import app

    root = _demo_copy(tmp_path)
    _edit_yaml(root / "sla.yaml", lambda s: s["rules"].append({"match": {"code": "0102"}}))
    result = CliRunner().invoke(app, ["city", "check", str(root)])
    assert result.exit_code == 1
    assert "sla.yaml: rules.5: a class code needs its kind" in result.output
    assert "1 error(s)" in result.output
