"""Patrols on the real servers: clock in inside one's grid (outside refused or flagged as
the pack says), the track in pieces stored once each, who patrols where now, clock out —
each clock-in and clock-out once on the `grid` topic."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from gridloop.auth import Role
from gridloop.citypack.staff import STAFF_FILE
from gridloop.config import DEMO_CITY_PACK
from schemas.events import PatrolEnded, PatrolStarted
from tests.conftest import Servers
from tests.integration.grid_world import G1, G2, IN_G1, IN_G2, NOWHERE, GridWorld, grid_world


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[GridWorld]:
    async with grid_world(servers) as found:
        yield found


# Fixes are taken after the clock-in, a few minutes apart (minutes after T0).
T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)


@pytest.fixture(autouse=True)
def _fixes_from_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixes are timed from the test's start, not from the module's import: a full run
    imports it minutes before, and a fix before the clock-in is refused."""
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    monkeypatch.setattr(sys.modules[__name__], "T0", now)


def _fix(point: dict[str, float], minutes: float) -> dict[str, object]:
    return point | {"at": (T0 + timedelta(minutes=minutes)).isoformat()}


async def test_a_patrol_from_clock_in_to_clock_out(world: GridWorld) -> None:
    manager = await world.token(Role.grid_staff, "GM-0001")
    lead = await world.token(Role.shift_lead, "lead-1")
    started = await world.http.post(
        f"/grids/{G1}/patrols", headers=manager | {"Idempotency-Key": "in-1"}, json={"point": IN_G1}
    )
    assert started.status_code == 201, started.text
    patrol = started.json()["patrol"]
    retried = await world.http.post(
        f"/grids/{G1}/patrols", headers=manager | {"Idempotency-Key": "in-1"}, json={"point": IN_G1}
    )
    assert (retried.status_code, retried.json()["patrol"]) == (200, patrol)
    twice = await world.http.post(f"/grids/{G1}/patrols", headers=manager, json={"point": IN_G1})
    assert twice.status_code == 409

    piece = {
        "seq": 0,
        "points": [_fix(IN_G1, 0), _fix(IN_G1, 1)],
    }
    first = await world.http.post(f"/patrols/{patrol}/track", headers=manager, json=piece)
    assert (first.status_code, first.json()["stored"]) == (201, True)
    again = await world.http.post(f"/patrols/{patrol}/track", headers=manager, json=piece)
    assert (again.status_code, again.json()["stored"]) == (200, False)
    other = piece | {"points": [_fix(IN_G1, 3)]}
    assert (
        await world.http.post(f"/patrols/{patrol}/track", headers=manager, json=other)
    ).status_code == 409
    later = {"seq": 1, "points": [_fix({"lon": 116.4008, "lat": 39.9206}, 4)]}
    assert (
        await world.http.post(f"/patrols/{patrol}/track", headers=manager, json=later)
    ).status_code == 201
    # A piece arriving late does not move the last point back.
    late = {"seq": 2, "points": [_fix(IN_G1, 2)]}
    late_piece = await world.http.post(f"/patrols/{patrol}/track", headers=manager, json=late)
    assert late_piece.status_code == 201

    now = (await world.http.get("/patrols", headers=lead)).json()
    assert [(p["patrol"], p["staff"], p["name"], p["grid"]) for p in now] == [
        (patrol, "GM-0001", "网格员 赵一", G1)
    ]
    assert (now[0]["last"]["lon"], now[0]["points"]) == (IN_G1["lon"], 4)
    neighbour = await world.token(Role.grid_staff, "GM-0002")
    assert (await world.http.get("/patrols", headers=neighbour)).json() == []
    assert (await world.http.get(f"/patrols/{patrol}", headers=neighbour)).status_code == 403
    theirs = await world.http.post(f"/patrols/{patrol}/track", headers=neighbour, json=later)
    assert theirs.status_code == 403

    ended = await world.http.post(f"/patrols/{patrol}/end", headers=manager, json={"point": IN_G1})
    assert ended.status_code == 200, ended.text
    assert (ended.json()["open"], ended.json()["points"], ended.json()["outside"]) == (False, 4, 0)
    again_end = await world.http.post(
        f"/patrols/{patrol}/end", headers=manager, json={"point": IN_G1}
    )
    assert again_end.json() == ended.json()
    assert (await world.http.get("/patrols", headers=lead)).json() == []
    # The patrols ended since a time (the console's list under the map): the ended one, to the
    # lead; none of the neighbour's grids; none ended after a later time.
    today = {"ended_since": (T0 - timedelta(hours=1)).isoformat()}
    day = (await world.http.get("/patrols", headers=lead, params=today)).json()
    assert [(p["patrol"], p["open"], p["points"]) for p in day] == [(patrol, False, 4)]
    assert (await world.http.get("/patrols", headers=neighbour, params=today)).json() == []
    later_on = {"ended_since": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()}
    assert (await world.http.get("/patrols", headers=lead, params=later_on)).json() == []
    naive = await world.http.get("/patrols", headers=lead, params={"ended_since": "2026-12-06"})
    assert naive.status_code == 422
    whole = (await world.http.get(f"/patrols/{patrol}", headers=lead)).json()
    taken = [datetime.fromisoformat(p["at"]) - T0 for p in whole["track"]]
    assert taken == [timedelta(minutes=m) for m in (0, 1, 4, 2)]  # by piece, as sent
    # A piece resent after the clock-out (an offline handheld's outbox) is answered; a new
    # one is refused.
    resent = await world.http.post(f"/patrols/{patrol}/track", headers=manager, json=later)
    assert (resent.status_code, resent.json()["stored"]) == (200, False)
    after = {"seq": 3, "points": [_fix(IN_G1, 5)]}
    assert (
        await world.http.post(f"/patrols/{patrol}/track", headers=manager, json=after)
    ).status_code == 409

    told = [(e.type, e.subject, getattr(e.data, "patrol", None)) for e in await world.events()]
    assert told == [
        ("gridloop.grid.patrol_started", G1, patrol),
        ("gridloop.grid.patrol_ended", G1, patrol),
    ]


async def test_outside_the_grid_is_refused_and_nothing_is_stored(world: GridWorld) -> None:
    manager = await world.token(Role.grid_staff, "GM-0002")  # works G2
    lead = await world.token(Role.shift_lead, "lead-1")
    refused = await world.http.post(f"/grids/{G2}/patrols", headers=manager, json={"point": IN_G1})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["type"] == "outside_grid"
    assert refused.json()["detail"][0]["loc"] == ["body", "point"]
    elsewhere = await world.http.post(
        f"/grids/{G1}/patrols", headers=manager, json={"point": IN_G1}
    )
    assert elsewhere.status_code == 403  # not their grid
    lead_in = await world.http.post(f"/grids/{G1}/patrols", headers=lead, json={"point": IN_G1})
    assert lead_in.status_code == 403  # the shift lead watches, a grid's people patrol
    assert (await world.http.get("/patrols", headers=lead)).json() == []
    started = await world.http.post(f"/grids/{G2}/patrols", headers=manager, json={"point": IN_G2})
    patrol = started.json()["patrol"]
    piece = {
        "seq": 0,
        "points": [_fix(IN_G2, 0), _fix(NOWHERE, 1)],
    }
    out = await world.http.post(f"/patrols/{patrol}/track", headers=manager, json=piece)
    assert out.status_code == 422
    assert out.json()["detail"][0]["loc"] == ["body", "points", "1"]
    whole = (await world.http.get(f"/patrols/{patrol}", headers=lead)).json()
    assert (whole["track"], whole["points"]) == ([], 0)
    assert [e.type for e in await world.events()] == ["gridloop.grid.patrol_started"]


@pytest.fixture
def flagging(tmp_path: Path) -> Path:
    root = tmp_path / "flagging"
    shutil.copytree(DEMO_CITY_PACK, root)
    staff = yaml.safe_load((root / STAFF_FILE).read_text(encoding="utf-8"))
    staff["patrols"] = {"outside": "flag"}
    (root / STAFF_FILE).write_text(yaml.safe_dump(staff, allow_unicode=True), "utf-8")
    return root


async def test_a_pack_that_flags_takes_points_outside_and_counts_them(
    servers: Servers, flagging: Path
) -> None:
    async with grid_world(servers, flagging) as world:
        supervisor = await world.token(Role.supervisor, "SUP-0001")
        started = await world.http.post(
            f"/grids/{G1}/patrols", headers=supervisor, json={"point": NOWHERE}
        )
        assert started.status_code == 201, started.text
        assert started.json()["start"]["outside"] is True
        patrol = started.json()["patrol"]
        piece = {
            "seq": 0,
            "points": [_fix(IN_G1, 0), _fix(NOWHERE, 1)],
        }
        stored = await world.http.post(f"/patrols/{patrol}/track", headers=supervisor, json=piece)
        assert (stored.status_code, stored.json()["outside"]) == (201, 1)
        ended = await world.http.post(
            f"/patrols/{patrol}/end", headers=supervisor, json={"point": IN_G1}
        )
        assert (ended.json()["points"], ended.json()["outside"]) == (2, 1)
        [begun, done] = [e.data for e in await world.events()]
        assert isinstance(begun, PatrolStarted) and isinstance(done, PatrolEnded)
        assert (begun.outside, done.outside) == (True, 1)


async def test_fixes_of_another_time_and_a_credential_of_another_role(world: GridWorld) -> None:
    manager = await world.token(Role.grid_staff, "GM-0001")
    started = await world.http.post(f"/grids/{G1}/patrols", headers=manager, json={"point": IN_G1})
    patrol = started.json()["patrol"]
    for minutes, why in ((-60, "before the patrol's clock-in"), (60, "in the future")):
        piece = {"seq": 0, "points": [_fix(IN_G1, 0), _fix(IN_G1, minutes)]}
        refused = await world.http.post(f"/patrols/{patrol}/track", headers=manager, json=piece)
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "points", "1", "at"]
        assert refused.json()["detail"][0]["msg"] == why
    # SUP-0001 supervises G1: a grid staff credential with that id is not a supervisor there.
    posing = await world.token(Role.grid_staff, "SUP-0001")
    assert (await world.http.get(f"/grids/{G1}/staff", headers=posing)).status_code == 403
    supervisor = await world.token(Role.supervisor, "SUP-0001")
    assert (await world.http.get(f"/grids/{G1}/staff", headers=supervisor)).status_code == 200
    # A team member (TM-0002, police) of G1 is grid staff there.
    police = await world.token(Role.grid_staff, "TM-0002")
    assert (await world.http.get(f"/patrols?grid={G1}", headers=police)).status_code == 200
