"""Every role against every endpoint of the grid service: who is let through the door (the
sibling of test_authorization_matrix.py, in its style and with its `Door`).

The policy: the shift lead, the centres and admin read every grid; a grid's people (grid
staff, supervisors) read and patrol in their own grids — a denial there is a 403 on the
path's grid, past the door; the shift lead and admin change the register; departments, the
hotline, tier offices and the public have no business here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gridloop.auth import Role
from services.grid.access import GRID_PEOPLE, READERS, REGISTRARS
from tests.conftest import Servers
from tests.integration.grid_world import G1, grid_world
from tests.integration.test_authorization_matrix import EVERYONE, Door

R = Role
READ: set[Role | None] = set(READERS)
PATROL: set[Role | None] = set(GRID_PEOPLE)
CHANGE: set[Role | None] = set(REGISTRARS)
GRID: list[tuple[str, str, set[Role | None]]] = [
    ("GET", f"/grids/{G1}/staff", READ),
    ("GET", f"/grids/{G1}/staff?at=2026-01-01T00:00:00Z", READ),
    ("GET", f"/grids/{G1}/history", READ),
    ("GET", "/staff/GM-0001/grids", READ),
    ("POST", f"/grids/{G1}/staff", CHANGE),
    ("POST", f"/grids/{G1}/staff/GM-0001/release", CHANGE),
    ("POST", f"/grids/{G1}/patrols", PATROL),
    ("POST", "/patrols/none/track", PATROL),
    ("POST", "/patrols/none/end", PATROL),
    ("GET", "/patrols", READ),
    ("GET", f"/patrols?grid={G1}", READ),
    ("GET", "/patrols/none", READ),
]


@pytest.fixture
async def door(servers: Servers) -> AsyncIterator[Door]:
    async with grid_world(servers) as world:
        tokens = {role: await world.credentials.issue(role, f"{role}-1") for role in R}
        yield Door(world.http, tokens)


def test_the_policy_is_the_one_written_down() -> None:
    assert {
        R.shift_lead,
        R.command_centre,
        R.supervision_centre,
        R.admin,
        R.grid_staff,
        R.supervisor,
    } == READ
    assert {R.shift_lead, R.admin} == CHANGE
    assert {R.grid_staff, R.supervisor} == PATROL


async def test_every_role_against_every_grid_endpoint(door: Door) -> None:
    wrong: list[str] = []
    for method, path, allowed in GRID:
        for role in EVERYONE:
            passed = await door.passes(method, path, role)
            if passed != (role in allowed):
                verdict = "let in" if passed else "kept out"
                wrong.append(f"{method} {path}: {role or 'no token'} was {verdict}")
    assert wrong == []


async def test_a_grid_person_outside_their_grid_is_refused_on_the_grid(door: Door) -> None:
    # The tokens' subjects (`grid_staff-1`, `supervisor-1`) work no grid.
    for role in (R.grid_staff, R.supervisor):
        headers = {"Authorization": f"Bearer {door.tokens[role]}"}
        for path, where in ((f"/grids/{G1}/staff", "path"), (f"/patrols?grid={G1}", "query")):
            response = await door.http.get(path, headers=headers)
            assert response.status_code == 403, (role, path)
            assert response.json()["detail"][0]["loc"] == [where, "grid"]
        assert (await door.http.get("/patrols", headers=headers)).json() == []
