"""The generated demo city (`gridloop city generate`): shaped like Dongcheng, valid under the
real loader, deterministic from its seed, cached by `dongcheng_pack`."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import shapely
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from gridloop.citypack import CityPack, load_city_pack
from gridloop.citypack.generate import cache_key, dongcheng_pack, generate_city_pack
from gridloop.citypack.generate.catalogue import CATALOGUE
from gridloop.citypack.generate.geometry import M_PER_DEG, Cells, Frame, contiguous
from schemas.events import Stage
from system.cli import app

STREETS: tuple[str, ...] = (
    "东华门",
    "景山",
    "交道口",
    "安定门",
    "北新桥",
    "东四",
    "朝阳门",
    "建国门",
    "东直门",
)
STREETS += ("和平里", "前门", "崇文门外", "东花市", "龙潭", "体育馆路", "天坛", "永定门外")
FILES = (
    "city.yaml",
    "grids.geojson",
    "components.csv",
    "routing.yaml",
    "sla.yaml",
    "households.csv",
)
SMALL = 0.05  # of the district: enough for what does not need the full size


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> CityPack:
    """The full district, generated and loaded once (about 0.5 s and 3 s)."""
    root = tmp_path_factory.mktemp("dongcheng")
    generate_city_pack(root, seed=7)
    return load_city_pack(root)


def _area_m2(polygon: shapely.Polygon) -> float:
    """Area on the ground, by the cos(latitude) scaling of the grid's own latitude."""
    cos = math.cos(math.radians(polygon.centroid.y))
    return float(polygon.area) * M_PER_DEG * M_PER_DEG * cos


def _one_piece(polygons: list[shapely.Polygon]) -> bool:
    """Edge-connected: squares that only touch at a corner make a MultiPolygon."""
    union = shapely.union_all(polygons)
    return isinstance(union, shapely.Polygon) and not union.interiors


def test_the_full_district_has_the_figures_of_dongcheng(full: CityPack) -> None:
    city = full.city
    assert city.district.code == "110101"
    assert [s.name.split()[0] for s in city.streets] == [f"{s}街道" for s in STREETS]
    assert [s.code for s in city.streets] == [f"{n:03d}" for n in range(1, 18)]
    assert 190 <= len(city.communities) <= 220
    assert 1550 <= len(full.grids) <= 1750
    assert len(full.components) >= 150_000
    assert 28 <= len(full.departments) <= 40
    assert {s.office for s in city.streets} <= set(full.departments)
    # Every street and community has grids, and every grid code is its community's.
    assert {g.code[6:9] for g in full.grids} == {s.code for s in city.streets}
    assert {g.code[6:12] for g in full.grids} == {c.code for c in city.communities}
    assert all(len(g.code) == 15 and g.code[6:12] == g.community for g in full.grids)
    assert all(g.supervisor for g in full.grids)
    per_supervisor = Counter(g.supervisor for g in full.grids)
    assert max(per_supervisor.values()) <= 12


def test_every_grid_has_its_people(full: CityPack) -> None:
    """Issue 17: a grid manager for every grid, its named supervisor, and a service team in
    the first grid of each street."""
    for grid in full.grids:
        roles = [p.role.value for p in full.staff_of(grid.code)]
        assert roles.count("grid_manager") == 1, grid.code
        assert (full.staff_of(grid.code)[1].id, roles[1]) == (grid.supervisor, "supervisor")
    teams = {
        g.street for g in full.grids if any(p.role.value == "doctor" for p in full.staff_of(g.code))
    }
    assert teams == {s for s in full.streets}


def test_the_district_takes_disputes_and_fixes_on_the_spot(full: CityPack) -> None:
    """Issue 17: the demo day's disputes go up the tiers from the grid, and a supervisor or
    grid manager may fix garbage, flyers and parking on the spot (自处置), nothing else."""
    ladder = full.sla.disputes
    assert ladder is not None and "0101" in ladder.types
    assert (ladder.above("grid"), ladder.above("community")) == ("community", "street")
    fixable = {c.code for c in full.classes.values() if c.self_handling}
    assert fixable == {"0102", "0201", "0505"}
    assert all(full.classes[("event", code)].self_handling for code in fixable)


def test_every_grid_has_tens_of_households_and_no_names(full: CityPack) -> None:
    """Issue 17: a household register (doors and occupancy) for every grid, to visit."""
    assert not full.households.names
    for grid in full.grids:
        doors = full.households.of(grid.code)
        assert 4 <= len(doors) <= 48, grid.code
        assert all(d.name is None for d in doors)
    uses = Counter(d.occupancy.value for g in full.grids for d in full.households.of(g.code))
    assert set(uses) == {"owner_occupied", "rented", "office", "vacant"}
    assert uses.most_common(1)[0][0] == "owner_occupied"


def test_grids_are_hectares_that_tile_the_district_without_gaps(full: CityPack) -> None:
    polygons = [full.polygon(g.code) for g in full.grids]
    areas = [_area_m2(p) for p in polygons]
    assert min(areas) >= 9_900 and max(areas) <= 10_100
    # No overlaps (the loader refuses them), no gaps: the union is one piece without holes
    # and its area is the sum of the grids'.
    assert _one_piece(polygons)
    union = shapely.union_all(polygons)
    assert _area_m2(union) == pytest.approx(sum(areas), rel=1e-3)


def test_streets_and_communities_are_contiguous_blocks(full: CityPack) -> None:
    by_street: dict[str, list[shapely.Polygon]] = {}
    by_community: dict[str, list[shapely.Polygon]] = {}
    for g in full.grids:
        by_street.setdefault(g.street, []).append(full.polygon(g.code))
        by_community.setdefault(g.community, []).append(full.polygon(g.code))
    assert all(_one_piece(p) for p in by_street.values())
    assert all(_one_piece(p) for p in by_community.values())
    sizes = sorted(len(p) for p in by_community.values())
    assert sizes[len(sizes) // 2] in range(6, 11)  # about 1,652 / 205 grids a community


def test_a_stray_piece_of_a_region_joins_the_neighbour_it_touches() -> None:
    # One row of five cells: region 0 in two pieces of two; the later one joins region 1.
    row = Cells(Frame(116.4, 39.9), 100.0, np.arange(5), np.zeros(5, dtype=np.int64))
    labels = np.array([0, 0, 1, 0, 0])
    assert contiguous(row, labels).tolist() == [0, 0, 1, 1, 1]
    # Within groups (streets), a piece joins only a region of its own group; one with no
    # such neighbour stays as it is.
    streets = np.array([0, 0, 0, 1, 1])
    assert contiguous(row, labels, within=streets).tolist() == [0, 0, 1, 0, 0]
    # The smaller piece goes; a tie between neighbours goes to the smaller label.
    assert contiguous(row, np.array([0, 1, 2, 1, 1]), within=streets).tolist() == [0, 0, 2, 1, 1]


def test_every_component_lies_inside_its_own_grid_alone(full: CityPack) -> None:
    components = list(full.components.values())
    found = full.locate_many([c.lon for c in components], [c.lat for c in components])
    assert [g.code if g else None for g in found] == [c.grid for c in components]


def test_components_span_the_six_major_classes_with_their_owners(full: CityPack) -> None:
    components = list(full.components.values())
    majors = Counter(c.class_code[:2] for c in components)
    assert set(majors) == {"01", "02", "03", "04", "05", "06"}
    assert {m.code for m in full.city.majors if m.kind == "component"} == set(majors)
    classes = Counter(c.class_code for c in components)
    assert classes["0118"] > 10_000 and classes["0402"] > 20_000  # street lamps and trees
    for c in components[:: len(components) // 500]:
        cls = full.classes[("component", c.class_code)]
        assert c.id[:6] == "110101" and c.id[6:10] == c.class_code
        assert c.owner == cls.owner
        assert c.maintainer in {cls.owner, full.streets[c.grid[6:9]].office}
    street_kept = [c for c in components if c.class_code == "0112"]  # unowned manhole covers
    assert street_kept and all(c.maintainer.startswith("STREET-") for c in street_kept)
    assert {c.status for c in components} == {"intact", "damaged", "lost", "abandoned", "removed"}


def test_time_limits_come_from_the_catalogue_per_class_and_urgency(full: CityPack) -> None:
    sla = full.sla
    garbage = full.classes[("event", "0102")]
    assert garbage.name.startswith("暴露垃圾") and garbage.owner == "SANITATION"
    assert garbage.duplicate_radius_m == 30
    normal, urgent = sla.terms("event", "0102"), sla.terms("event", "0102", "urgent")
    assert normal.limits[Stage.handle] > urgent.limits[Stage.handle]
    parking = full.classes[("event", "0505")]
    assert parking.owner == "TRAFFIC-POLICE"
    # An emergency runs on the natural clock, with short stage limits and its own ladder.
    gas = sla.terms("event", "0403", "urgent")
    assert gas.clock_kind == "natural"
    assert gas.limits[Stage.dispatch].total_seconds() == 15 * 60
    assert gas.limits[Stage.handle].total_seconds() == 30 * 60
    assert [r.tier for r in gas.ladder] == ["street", "district", "city"]
    assert sla.office("street", full.grids[0].code) == full.city.streets[0].office
    assert sla.office("district", None) == "DISTRICT-110101"


def test_places_route_to_their_own_bodies(full: CityPack) -> None:
    names = [r.name for r in full.routing.rules]
    assert any("天坛" in n for n in names)
    park = next(r for r in full.routing.rules if "天坛" in r.name)
    centre = shapely.geometry.shape(park.geometry).centroid
    assert full.locate(centre.x, centre.y) is not None  # moved and scaled with the district
    hit = full.routing.match(centre.x, centre.y, "event", "0102")
    assert hit is not None and hit.owner == "PARKS"


def test_the_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    first = generate_city_pack(tmp_path / "a", seed=11, fraction=SMALL)
    generate_city_pack(tmp_path / "b", seed=11, fraction=SMALL)
    generate_city_pack(tmp_path / "c", seed=12, fraction=SMALL)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "components.csv").read_bytes() != (
        tmp_path / "c" / "components.csv"
    ).read_bytes()
    assert first.streets == 17 and first.grids < 200


def test_a_small_district_keeps_its_streets_and_loads(tmp_path: Path) -> None:
    made = generate_city_pack(tmp_path, seed=1, fraction=SMALL)
    pack = load_city_pack(tmp_path)
    assert len(pack.grids) == made.grids and len(pack.components) == made.components
    assert {g.street for g in pack.grids} == {s.code for s in pack.city.streets}
    with pytest.raises(ValueError, match="fraction"):
        generate_city_pack(tmp_path, fraction=0)


def test_a_catalogue_naming_an_unknown_owner_is_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    raw["events"][0]["owner"] = "NOBODY"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValidationError, match="unknown owner NOBODY"):
        generate_city_pack(tmp_path / "out", catalogue=bad)


def test_the_pack_is_generated_once_per_seed_then_cached(tmp_path: Path) -> None:
    path = dongcheng_pack(tmp_path, seed=5)
    assert path.name == cache_key(5) and cache_key(5) != cache_key(6)
    stamp = (path / "components.csv").stat().st_mtime_ns
    assert dongcheng_pack(tmp_path, seed=5) == path
    assert (path / "components.csv").stat().st_mtime_ns == stamp  # not generated again
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no scratch left behind
    assert all((path / name).is_file() for name in FILES)


def test_the_command_generates_a_pack_that_city_check_accepts(tmp_path: Path) -> None:
    out = tmp_path / "pack"
    runner = CliRunner()
    made = runner.invoke(app, ["city", "generate", str(out), "--seed", "3", "--fraction", "0.05"])
    assert made.exit_code == 0, made.output
    assert "17 streets" in made.output
    checked = runner.invoke(app, ["city", "check", str(out)])
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("ok ")
    refused = runner.invoke(app, ["city", "generate", str(out), "--fraction", "2"])
    assert refused.exit_code == 2
