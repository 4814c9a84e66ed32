"""Who may open a case on the workbench (`core.visible`): to anyone else it is "no such
case" — a department what it holds, the grid's people their grids' cases, a tier office the
disputes of its area, the centres every case."""

from __future__ import annotations

from typing import Any

import pytest

from gridloop.access import Principal, Role
from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from services.console import core

GRID = "110101001001001"  # GM-0001's (the demo's staff.yaml)
OTHER_GRID = "110101001002001"


@pytest.fixture(scope="module")
def pack() -> CityPack:
    return load_city_pack(DEMO_CITY_PACK)


def record(**fields: Any) -> CaseRecord:
    doc = {"_id": "C-1", "state": "reported", "version": 1, "kind": "event"} | fields
    return CaseRecord.model_validate(doc)


def test_the_grid_s_people_open_the_cases_of_their_grids_only(pack: CityPack) -> None:
    manager = Principal(Role.grid_staff, "GM-0001")
    assert core.visible(manager, record(grid_code=GRID), pack)
    assert not core.visible(manager, record(grid_code=OTHER_GRID), pack)
    assert not core.visible(manager, record(), pack)  # no grid: nobody's grid
    assert not core.visible(Principal(Role.grid_staff, "GM-9999"), record(grid_code=GRID), pack)
    assert not core.visible(manager, record(grid_code=GRID), None)  # no register


def test_a_tier_office_opens_the_disputes_of_its_area_only(pack: CityPack) -> None:
    dispute = record(kind="dispute", grid_code=GRID)
    community, street = GRID[6:12], GRID[6:9]
    assert core.visible(Principal(Role.tier_office, community), dispute, pack)
    assert core.visible(Principal(Role.tier_office, street), dispute, pack)
    assert core.visible(Principal(Role.tier_office, GRID[:6]), dispute, pack)  # the district
    assert not core.visible(Principal(Role.tier_office, OTHER_GRID[6:12]), dispute, pack)
    # An ordinary case of the same grid is the departments' and the centres', not a tier's.
    assert not core.visible(Principal(Role.tier_office, community), record(grid_code=GRID), pack)


def test_a_department_opens_what_it_holds_and_the_centres_every_case(pack: CityPack) -> None:
    held = record(state="dispatched", department="ROADS", grid_code=GRID)
    assert core.visible(Principal(Role.department, "ROADS"), held, pack)
    assert not core.visible(Principal(Role.department, "WATER"), held, pack)
    for role in (Role.command_centre, Role.supervision_centre, Role.shift_lead, Role.supervisor):
        assert core.visible(Principal(role, "x"), held, pack)
