"""The staff register on the real servers: seeded from the pack, changed through the API
(events on the `grid` topic, once), its history asked at a time, and a grid's people kept
to their own grids."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from gridloop.auth import Role
from tests.conftest import Servers
from tests.integration.grid_world import G1, G2, GridWorld, grid_world


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[GridWorld]:
    async with grid_world(servers) as found:
        yield found


async def test_the_pack_seeds_the_register_and_a_grid_manager_sees_only_their_grid(
    world: GridWorld,
) -> None:
    lead = await world.token(Role.shift_lead, "lead-1")
    found = (await world.http.get(f"/grids/{G1}/staff", headers=lead)).json()
    assert [(s["staff"], s["role"]) for s in found][:2] == [
        ("GM-0001", "grid_manager"),
        ("SUP-0001", "supervisor"),
    ]
    assert {s["role"] for s in found} >= {"police_officer", "doctor"}
    assert all(s["since"] is None and s["until"] is None for s in found)
    manager = await world.token(Role.grid_staff, "GM-0001")
    assert (await world.http.get(f"/grids/{G1}/staff", headers=manager)).status_code == 200
    other = await world.http.get(f"/grids/{G2}/staff", headers=manager)
    assert other.status_code == 403
    assert other.json()["detail"][0]["loc"] == ["path", "grid"]
    assert (await world.http.get("/staff/GM-0001/grids", headers=manager)).json() == [G1]
    assert (await world.http.get("/staff/GM-0002/grids", headers=manager)).status_code == 403
    supervisor = await world.token(Role.supervisor, "SUP-0001")
    assert (await world.http.get(f"/grids/{G2}/history", headers=supervisor)).status_code == 200
    missing = await world.http.get("/grids/110101009009009/staff", headers=lead)
    assert missing.status_code == 404


async def test_a_handover_is_kept_in_the_history_and_told_once(world: GridWorld) -> None:
    lead = await world.token(Role.shift_lead, "lead-1")
    taken = await world.http.post(
        f"/grids/{G1}/staff",
        headers=lead,
        json={"staff": "GM-0100", "name": "新", "role": "grid_manager"},
    )
    assert taken.status_code == 409
    assert taken.json()["detail"][0]["type"] == "role_taken"
    released = await world.http.post(
        f"/grids/{G1}/staff/GM-0001/release",
        headers=lead | {"Idempotency-Key": "r-1"},
        json={"role": "grid_manager", "reason": "调岗"},
    )
    assert released.status_code == 200, released.text
    until = released.json()["until"]
    assert until is not None
    again = await world.http.post(
        f"/grids/{G1}/staff/GM-0001/release",
        headers=lead | {"Idempotency-Key": "r-1"},
        json={"role": "grid_manager", "reason": "调岗"},
    )
    assert (again.status_code, again.json()) == (200, released.json())
    reused = await world.http.post(
        f"/grids/{G1}/staff/GM-0001/release",
        headers=lead | {"Idempotency-Key": "r-1"},
        json={"role": "doctor"},
    )
    assert reused.status_code == 422
    assigned = await world.http.post(
        f"/grids/{G1}/staff",
        headers=lead,
        json={"staff": "GM-0100", "name": "网格员 新", "role": "grid_manager"},
    )
    assert assigned.status_code == 201, assigned.text
    since = assigned.json()["since"]
    assert datetime.fromisoformat(since) >= datetime.fromisoformat(until)

    def managers(spells: list[dict[str, str]]) -> list[str]:
        return [s["staff"] for s in spells if s["role"] == "grid_manager"]

    before = await world.http.get(
        f"/grids/{G1}/staff", headers=lead, params={"at": "2020-01-01T00:00:00Z"}
    )
    assert managers(before.json()) == ["GM-0001"]
    assert managers((await world.http.get(f"/grids/{G1}/staff", headers=lead)).json()) == [
        "GM-0100"
    ]
    history = (await world.http.get(f"/grids/{G1}/history", headers=lead)).json()
    assert managers(history) == ["GM-0001", "GM-0100"]
    # A restart seeds nothing again: the API's changes stand.
    assert await world.reseed() == 0
    assert (await world.http.get(f"/grids/{G1}/history", headers=lead)).json() == history
    # The register is what authorization follows: the released manager is out, the new in.
    old = await world.token(Role.grid_staff, "GM-0001")
    assert (await world.http.get(f"/grids/{G1}/staff", headers=old)).status_code == 403
    new = await world.token(Role.grid_staff, "GM-0100")
    assert (await world.http.get(f"/grids/{G1}/staff", headers=new)).status_code == 200
    told = [(e.type, e.subject, getattr(e.data, "staff", None)) for e in await world.events()]
    assert told == [
        ("gridloop.grid.staff_released", G1, "GM-0001"),
        ("gridloop.grid.staff_assigned", G1, "GM-0100"),
    ]


async def test_bad_changes_are_refused_and_change_nothing(world: GridWorld) -> None:
    lead = await world.token(Role.shift_lead, "lead-1")
    bad = await world.http.post(
        f"/grids/{G1}/staff", headers=lead, json={"staff": "X 1", "name": "", "role": "pilot"}
    )
    assert bad.status_code == 422
    fields = {tuple(d["loc"]) for d in bad.json()["detail"]}
    assert {("body", "staff"), ("body", "name"), ("body", "role")} <= fields
    absent = await world.http.post(
        f"/grids/{G1}/staff/GM-0002/release", headers=lead, json={"role": "grid_manager"}
    )
    assert absent.status_code == 404
    manager = await world.token(Role.grid_staff, "GM-0001")
    denied = await world.http.post(
        f"/grids/{G1}/staff", headers=manager, json={"staff": "TM-9", "name": "x", "role": "doctor"}
    )
    assert denied.status_code == 403
    history = (await world.http.get(f"/grids/{G1}/history", headers=lead)).json()
    assert all(s["since"] is None for s in history)  # the pack's, untouched
    assert await world.events() == []


async def test_two_managers_assigned_at_once_one_stands(world: GridWorld) -> None:
    lead = await world.token(Role.shift_lead, "lead-1")
    released = await world.http.post(
        f"/grids/{G1}/staff/GM-0001/release", headers=lead, json={"role": "grid_manager"}
    )
    assert released.status_code == 200

    async def assign(staff: str) -> int:
        body = {"staff": staff, "name": staff, "role": "grid_manager"}
        answer = await world.http.post(f"/grids/{G1}/staff", headers=lead, json=body)
        return answer.status_code

    statuses = await asyncio.gather(*(assign(f"GM-02{n:02d}") for n in range(6)))
    assert sorted(statuses) == [201, 409, 409, 409, 409, 409]
    now = (await world.http.get(f"/grids/{G1}/staff", headers=lead)).json()
    assert len([s for s in now if s["role"] == "grid_manager"]) == 1
    # A loser that finds the winner's outbox still there publishes it too (as a case's
    # head does): the same fact under one id, which consumers drop as a repeat.
    assigned = [e for e in await world.events() if e.type == "gridloop.grid.staff_assigned"]
    assert len({e.id for e in assigned}) == 1


async def test_an_idempotency_key_is_its_callers_own(world: GridWorld) -> None:
    lead = await world.token(Role.shift_lead, "lead-1")
    admin = await world.token(Role.admin, "ops")
    key = {"Idempotency-Key": "same-1"}
    first = await world.http.post(
        f"/grids/{G1}/staff/TM-0004/release", headers=lead | key, json={"role": "team_member"}
    )
    assert first.status_code == 200
    theirs = await world.http.post(
        f"/grids/{G1}/staff",
        headers=admin | key,
        json={"staff": "TM-0005", "name": "志愿者", "role": "team_member"},
    )
    assert theirs.status_code == 201, theirs.text
    assert [e.type.rsplit(".", 1)[1] for e in await world.events()] == [
        "staff_released",
        "staff_assigned",
    ]
