"""Every role against every endpoint of households and visits (走访): who is let through the
door (the sibling of test_authorization_matrix.py, in its style and with its `Door`).

The policy: household data — doors, occupancy, names where the pack keeps them, visits and
their findings — is for the grid's own staff, the supervision and command centres and admin;
not departments, supervisors, the hotline, tier offices or the public. The grid's own staff
log visits and make findings cases; they and admin change the register. Coverage, a figure
without personal data, also goes to the shift lead. A grid person of another grid passes the
door and is refused on the grid (403 on the path's grid, or 404 for a visit by id).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gridloop.auth import Role
from schemas import clock
from services.grid.households import COVERAGE_READERS, HOUSEHOLD_READERS
from tests.conftest import Servers
from tests.integration.test_authorization_matrix import EVERYONE, Door
from tests.integration.visits_world import G1, G2, VisitsWorld, visits_world

R = Role
READ: set[Role | None] = {R.grid_staff, *HOUSEHOLD_READERS}
CHANGE: set[Role | None] = {R.grid_staff, R.admin}
STAFF_ONLY: set[Role | None] = {R.grid_staff}
COVERAGE: set[Role | None] = {R.grid_staff, *COVERAGE_READERS}
HOUSEHOLD = "/households/hh_0000000000000000"
VISITS: list[tuple[str, str, set[Role | None]]] = [
    ("GET", f"/grids/{G1}/households", READ),
    ("POST", f"/grids/{G1}/households", CHANGE),
    ("PATCH", HOUSEHOLD, CHANGE),
    ("POST", f"/grids/{G1}/visits", STAFF_ONLY),
    ("GET", f"/grids/{G1}/visits?period=2026-12", READ),
    ("GET", "/visits/none", READ),
    ("POST", "/visits/none/findings/0/case", STAFF_ONLY),
    ("GET", f"/grids/{G1}/coverage?period=2026-12", COVERAGE),
]


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[VisitsWorld]:
    async with visits_world(servers) as found:
        yield found


@pytest.fixture
async def door(world: VisitsWorld) -> Door:
    # The grid staff's token is GM-0001's, who works G1: past the door and the grid.
    subjects = {R.grid_staff: "GM-0001", R.department: "WATER"}
    tokens = {r: await world.credentials.issue(r, subjects.get(r, f"{r}-1")) for r in R}
    return Door(world.grid, tokens)


def test_the_policy_is_the_one_written_down() -> None:
    assert {R.supervision_centre, R.command_centre, R.admin, R.grid_staff} == READ
    assert {R.supervision_centre, R.command_centre, R.admin, R.shift_lead, R.grid_staff} == (
        COVERAGE
    )


async def test_every_role_against_every_visits_endpoint(door: Door) -> None:
    wrong: list[str] = []
    for method, path, allowed in VISITS:
        for role in EVERYONE:
            passed = await door.passes(method, path, role)
            if passed != (role in allowed):
                verdict = "let in" if passed else "kept out"
                wrong.append(f"{method} {path}: {role or 'no token'} was {verdict}")
    assert wrong == []


async def test_another_grids_staff_are_refused_on_the_grid(world: VisitsWorld) -> None:
    """GM-0002 works G2: every endpoint of G1 refuses them (403 on the grid), and what
    names a door or a visit of G1 is refused as if it were not there or not theirs."""
    [door, *_] = await world.doors(G1)
    visit = {"at": clock.now().isoformat(), "households": [door["household"]]}
    logged = await world.post(f"/grids/{G1}/visits", visit, "zhao")
    assert logged.status_code == 202, logged.text
    visit_id = logged.json()["visit_id"]
    for method, path in (
        ("GET", f"/grids/{G1}/households"),
        ("POST", f"/grids/{G1}/households"),
        ("POST", f"/grids/{G1}/visits"),
        ("GET", f"/grids/{G1}/visits?period=2026-12"),
        ("GET", f"/grids/{G1}/coverage?period=2026-12"),
    ):
        body: dict[str, Any] = {"building": "1号楼", "door": "101", "occupancy": "rented"}
        if path.endswith("/visits") and method == "POST":
            body = visit
        answer = await world.grid.request(method, path, headers=world.auth("qian"), json=body)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["path", "grid"], (method, path)
    patch = await world.grid.patch(
        f"/households/{door['household']}", json={"occupancy": "office"}, headers=world.auth("qian")
    )
    assert (patch.status_code, patch.json()["detail"][0]["loc"]) == (403, ["path", "grid"])
    seen = await world.get(f"/visits/{visit_id}", "qian")  # another grid's: as if none
    assert (seen.status_code, seen.json()["detail"][0]["loc"]) == (404, ["path", "visit"])
    case = {"point": {"lon": 116.4005, "lat": 39.9204}, "class_code": "0102"}
    made = await world.post(f"/visits/{visit_id}/findings/0/case", case, "qian")
    assert (made.status_code, made.json()["detail"][0]["loc"]) == (403, ["path", "grid"])
    # Their own grid is theirs.
    assert (await world.get(f"/grids/{G2}/households", "qian")).status_code == 200


async def test_a_supervisors_id_on_a_grid_staff_credential_reaches_no_household(
    world: VisitsWorld,
) -> None:
    """SUP-0001 supervises G1 and G2: their supervisor spells are not a grid staff's, so a
    grid staff credential in their name sees no household there."""
    token = await world.credentials.issue(R.grid_staff, "SUP-0001")
    headers = {"Authorization": f"Bearer {token}"}
    answer = await world.grid.get(f"/grids/{G1}/households", headers=headers)
    assert (answer.status_code, answer.json()["detail"][0]["loc"]) == (403, ["path", "grid"])
