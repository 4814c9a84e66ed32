"""The household register of the pack (`households.csv`): the demo's loads, and a broken one
is refused with every error listed, each with its line; names only where the pack keeps them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from gridloop.citypack import CityPackError, load_city_pack
from gridloop.citypack.households import (
    HOUSEHOLDS_FILE,
    HouseholdRegister,
    Occupancy,
    household_id,
    load_households,
)
from gridloop.citypack.model import Grid
from gridloop.config import DEMO_CITY_PACK

G1, G2 = "110101001001001", "110101001001002"


@pytest.fixture(scope="module")
def grids() -> list[Grid]:
    return load_city_pack(DEMO_CITY_PACK).grids


def _load(tmp_path: Path, text: str, grids: list[Grid], names: bool = False) -> list[str]:
    (tmp_path / HOUSEHOLDS_FILE).write_text(text, encoding="utf-8")
    errors: list[str] = []
    load_households(tmp_path, grids, names, errors)
    return errors


def test_the_demo_register_has_tens_of_doors_in_every_grid(grids: list[Grid]) -> None:
    errors: list[str] = []
    register = load_households(DEMO_CITY_PACK, grids, False, errors)
    assert errors == []
    assert register is not None
    for grid in grids:
        doors = register.of(grid.code)
        assert 10 <= len(doors) <= 60, grid.code
        assert all(d.name is None for d in doors)  # the demo keeps no names
    kinds = {d.occupancy for g in grids for d in register.of(g.code)}
    assert kinds == set(Occupancy)


def test_without_the_file_the_register_is_empty(tmp_path: Path, grids: list[Grid]) -> None:
    errors: list[str] = []
    assert load_households(tmp_path, grids, False, errors) == HouseholdRegister()
    assert errors == []


def test_chinese_occupancy_names_are_read(tmp_path: Path, grids: list[Grid]) -> None:
    text = f"grid,building,door,occupancy\n{G1},3号楼,1-101,出租\n{G1},3号楼,1-102,空置\n"
    (tmp_path / HOUSEHOLDS_FILE).write_text(text, encoding="utf-8")
    register = load_households(tmp_path, grids, False, [])
    assert register is not None
    assert [d.occupancy for d in register.of(G1)] == [Occupancy.rented, Occupancy.vacant]
    assert register.of(G1)[0].id == household_id(G1, "3号楼", "1-101")


def test_every_bad_row_is_listed_with_its_line(tmp_path: Path, grids: list[Grid]) -> None:
    text = (
        "grid,building,door,occupancy\n"
        f"{G1},3号楼,101,owner_occupied\n"  # 2: fine
        "110101009009009,3号楼,101,rented\n"  # 3: no such grid
        f"{G1},3号楼,101,rented\n"  # 4: the door of line 2 again
        f"{G1},3号楼,102,squatted\n"  # 5: no such occupancy
        f"{G2},,103,office\n"  # 6: no building
        f"{G2},4号楼,1 01,office\n"  # 7: a door with a space
        f"{G2},4号楼,104,office,extra\n"  # 8: more fields than columns
    )
    errors = _load(tmp_path, text, grids)
    assert errors[0].startswith(f"{HOUSEHOLDS_FILE}:5: occupancy:")
    assert errors[1].startswith(f"{HOUSEHOLDS_FILE}:6: building:")
    assert errors[2].startswith(f"{HOUSEHOLDS_FILE}:7: door:")
    assert errors[3] == f"{HOUSEHOLDS_FILE}:8: more fields than columns"
    assert errors[4] == f"{HOUSEHOLDS_FILE}:3: unknown grid 110101009009009"
    assert errors[5] == (
        f"{HOUSEHOLDS_FILE}:4: door 101 of 3号楼 in grid {G1} is listed twice (first on line 2)"
    )
    assert len(errors) == 6


def test_a_missing_column_is_named(tmp_path: Path, grids: list[Grid]) -> None:
    errors = _load(tmp_path, f"grid,building,occupancy\n{G1},3号楼,rented\n", grids)
    assert errors == [f"{HOUSEHOLDS_FILE}:1: missing column(s): door"]


def test_names_are_refused_unless_the_pack_keeps_them(tmp_path: Path, grids: list[Grid]) -> None:
    text = (
        f"grid,building,door,occupancy,name\n{G1},3号楼,101,rented,张三\n{G1},3号楼,102,rented,\n"
    )
    errors = _load(tmp_path, text, grids, names=False)
    assert len(errors) == 1
    assert errors[0].startswith(f"{HOUSEHOLDS_FILE}:2: name: names are off")
    assert _load(tmp_path, text, grids, names=True) == []
    register = load_households(tmp_path, grids, True, [])
    assert register is not None
    assert [d.name for d in register.of(G1)] == ["张三", None]


def test_a_column_the_register_does_not_keep_is_refused(tmp_path: Path, grids: list[Grid]) -> None:
    text = f"grid,building,door,occupancy,phone\n{G1},3号楼,101,rented,13800000000\n"
    errors = _load(tmp_path, text, grids, names=True)
    assert len(errors) == 1
    assert errors[0].startswith(f"{HOUSEHOLDS_FILE}:2: phone:")


def test_a_pack_with_a_broken_register_is_refused_with_its_other_errors(tmp_path: Path) -> None:
    root = tmp_path / "pack"
    shutil.copytree(DEMO_CITY_PACK, root)
    city = yaml.safe_load((root / "city.yaml").read_text(encoding="utf-8"))
    city["households"] = {"names": "perhaps"}  # not a boolean
    (root / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), encoding="utf-8")
    with (root / HOUSEHOLDS_FILE).open("a", encoding="utf-8") as register:
        register.write("110101009009009,3号楼,101,rented\n")
    with pytest.raises(CityPackError) as refused:
        load_city_pack(root)
    errors = refused.value.errors
    assert any(e.startswith("city.yaml:") and "households.names" in e for e in errors), errors
    assert any(e.endswith("unknown grid 110101009009009") for e in errors), errors


def test_the_pack_turns_names_on(tmp_path: Path) -> None:
    root = tmp_path / "pack"
    shutil.copytree(DEMO_CITY_PACK, root)
    city = yaml.safe_load((root / "city.yaml").read_text(encoding="utf-8"))
    city["households"] = {"names": True}
    (root / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), encoding="utf-8")
    (root / HOUSEHOLDS_FILE).write_text(
        f"grid,building,door,occupancy,name\n{G1},3号楼,101,rented,张三\n", encoding="utf-8"
    )
    pack = load_city_pack(root)
    assert pack.households.names
    assert [d.name for d in pack.households.of(G1)] == ["张三"]
