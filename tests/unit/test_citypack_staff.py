"""The pack's staff register (staff.yaml): the demo staffs every grid, a pack without the
file has no staff, and a bad register is refused with every error and its line."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridloop.citypack import CityPackError, load_city_pack
from gridloop.citypack.staff import STAFF_FILE, StaffRole
from gridloop.config import DEMO_CITY_PACK

PACK = load_city_pack(DEMO_CITY_PACK)
G1, G2 = "110101001001001", "110101001001002"


def _demo_staff() -> dict[str, Any]:
    raw = yaml.safe_load((DEMO_CITY_PACK / STAFF_FILE).read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def _pack_with(tmp_path: Path, staff: dict[str, Any] | None) -> Path:
    root = tmp_path / "pack"
    if not root.exists():
        shutil.copytree(DEMO_CITY_PACK, root)
    if staff is None:
        (root / STAFF_FILE).unlink()
    else:
        (root / STAFF_FILE).write_text(yaml.safe_dump(staff, allow_unicode=True), "utf-8")
    return root


def _errors(root: Path) -> list[str]:
    with pytest.raises(CityPackError) as info:
        load_city_pack(root)
    return info.value.errors


def test_every_demo_grid_has_a_grid_manager_and_its_named_supervisor() -> None:
    for grid in PACK.grids:
        roles = {(p.role, p.id) for p in PACK.staff_of(grid.code)}
        assert sum(1 for role, _ in roles if role is StaffRole.grid_manager) == 1
        assert (StaffRole.supervisor, grid.supervisor) in roles


def test_the_demo_has_a_service_team_and_grids_per_person() -> None:
    team = {p.role for p in PACK.staff_of(G1)} - {StaffRole.grid_manager, StaffRole.supervisor}
    assert {StaffRole.police_officer, StaffRole.doctor} <= team
    assert PACK.grids_of("SUP-0001") == [G1, G2]
    assert PACK.grids_of("nobody") == []
    assert PACK.staff.patrols.outside == "refuse"


def test_a_pack_without_staff_has_none(tmp_path: Path) -> None:
    pack = load_city_pack(_pack_with(tmp_path, None))
    assert pack.staff_of(G1) == []
    assert pack.staff.patrols.outside == "refuse"


def test_a_bad_register_lists_every_error_with_its_line(tmp_path: Path) -> None:
    staff = _demo_staff()
    people = staff["staff"]
    people[1]["id"] = "GM-0001"  # used twice
    people[2]["grids"] = ["110101009009009"]  # no such grid
    people.append({"id": "GM-0099", "name": "x", "role": "grid_manager", "grids": [G1]})
    people[8]["grids"] = [G1, "110101001002001"]  # SUP-0001 where SUP-0002 is named
    people[9]["grids"] = ["110101001002002"]  # SUP-0002 gone from 110101001002001 …
    people[10]["role"] = "astronaut"
    staff["patrols"] = {"outside": "shrug"}
    errors = _errors(_pack_with(tmp_path, staff))
    text = "\n".join(errors)
    assert "staff.yaml: patrols.outside: Input should be 'refuse' or 'flag'" in text
    assert "staff.yaml: staff.10.role: Input should be" in text
    # The model's errors stop the cross-checks; fix them and the rest are all listed.
    staff["patrols"] = {"outside": "flag"}
    people[10]["role"] = "supervisor"
    errors = _errors(_pack_with(tmp_path, staff))
    assert all(e.startswith("staff.yaml:") for e in errors), errors
    expected = [
        "staff.1.id: GM-0001 is already staff 0",
        "staff.2.grids.0: unknown grid 110101009009009",
        f"staff.16.grids.0: grid {G1} already has grid_manager GM-0001",
        "staff.8.grids.1: grid 110101001002001 names supervisor SUP-0002, not SUP-0001",
        "staff: grid 110101001002001 names supervisor SUP-0002, who is not staff there",
        f"staff: grid {G2} names supervisor SUP-0001, who is not staff there",
    ]
    for fragment in expected:
        assert any(fragment in e for e in errors), (fragment, errors)
    assert len(errors) == len(expected)
    line = next(e for e in errors if "unknown grid" in e).split(":")[1]
    assert int(line) > 1  # the line of the value


def test_a_person_needs_a_grid_and_a_plain_id(tmp_path: Path) -> None:
    staff = _demo_staff()
    staff["staff"][0]["grids"] = []
    staff["staff"][1]["id"] = "GM 2"
    errors = _errors(_pack_with(tmp_path, staff))
    assert any("staff.0.grids: List should have at least 1 item" in e for e in errors), errors
    assert any("staff.1.id: String should match pattern" in e for e in errors), errors
