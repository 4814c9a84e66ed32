"""Households and visits (走访) on the real broker and database: the register by role and
grid, a visit logged once however often the handheld sends it, a finding made a case in
intake (the real intake app, asked over HTTP), and coverage from the visits logged."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from gridloop.access import Principal, Role
from gridloop.config import DEMO_CITY_PACK
from gridloop.topology import named
from gridloop.visits import findings_by_type
from schemas import clock
from schemas.envelope import Envelope, decode
from schemas.events import CaseReported
from services.grid.intake_client import IntakeClient
from services.grid.service import SOURCE
from services.grid.visit_store import VisitStore
from services.grid.visiting import LogVisit, decide_visit, visit_logged
from services.grid.visits import Asked, Visits, visit_id
from services.grid.visits_api import VisitIn
from tests.conftest import Servers
from tests.helpers import read_topic
from tests.integration.visits_world import G1, G2, VisitsWorld, visits_world

INSIDE_G1 = {"lon": 116.4005, "lat": 39.9204}
World = VisitsWorld


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[World]:
    async with visits_world(servers) as found:
        yield found


def _visit(households: list[str], *findings: dict[str, Any], ago: float = 1.0) -> dict[str, Any]:
    # In Beijing time, as a handheld there says it: the answer gives it back in UTC.
    at = (clock.now() - timedelta(hours=ago)).astimezone(ZoneInfo("Asia/Shanghai"))
    return {"at": at.isoformat(), "households": households, "findings": list(findings)}


async def _grid_records(world: World, match: str, count: int) -> list[Any]:
    """The `grid` topic's events whose JSON mentions `match`, once `count` are there."""
    kafka, topic = world.kafka, named(world.namespace, "grid")

    def found(records: list[Any]) -> list[Any]:
        return [r for r in records if match.encode() in r.value]

    records = await read_topic(kafka, topic, lambda rs: len(found(rs)) >= count)
    return [decode(r.value, r.headers) for r in found(records)]


# --- the register --------------------------------------------------------------------------------


async def test_household_data_is_shown_to_the_grids_own_staff_and_the_centres(world: World) -> None:
    mine = await world.doors(G1, "zhao")
    assert len(mine) == len(world.pack.households.of(G1)) > 10
    assert {d["grid"] for d in mine} == {G1}
    assert all(d["name"] is None for d in mine)  # the demo keeps no names
    for who in ("centre", "command", "admin"):
        assert len(await world.doors(G2, who)) == len(world.pack.households.of(G2))
    other = await world.get(f"/grids/{G2}/households", "zhao")
    assert other.status_code == 403
    assert other.json()["detail"][0]["loc"] == ["path", "grid"]
    for who in ("department", "supervisor", "lead"):
        assert (await world.get(f"/grids/{G1}/households", who)).status_code == 403
    assert (await world.grid.get(f"/grids/{G1}/households")).status_code == 401
    assert (await world.get("/grids/110101009009009/households", "admin")).status_code == 404


async def test_the_grids_staff_change_its_register_and_the_log_says_so(world: World) -> None:
    door = {"building": "多福巷 99号楼", "door": "101", "occupancy": "rented"}
    added = await world.post(f"/grids/{G1}/households", door, "zhao")
    assert added.status_code == 201, added.text
    hid = added.json()["household"]
    assert (await world.post(f"/grids/{G1}/households", door, "zhao")).status_code == 409
    named = await world.post(f"/grids/{G1}/households", door | {"name": "张三"}, "zhao")
    assert (named.status_code, named.json()["detail"][0]["type"]) == (422, "names_off")
    assert (await world.post(f"/grids/{G1}/households", door, "qian")).status_code == 403

    headers = world.auth("zhao")
    changed = await world.grid.patch(
        f"/households/{hid}", json={"occupancy": "office"}, headers=headers
    )
    assert (changed.status_code, changed.json()["occupancy"]) == (200, "office")
    twice = await world.grid.patch(
        f"/households/{hid}", json={"occupancy": "office"}, headers=headers
    )
    assert (twice.status_code, twice.json()) == (200, changed.json())  # no second fact
    foreign = await world.grid.patch(
        f"/households/{hid}", json={"occupancy": "vacant"}, headers=world.auth("qian")
    )
    assert foreign.status_code == 403
    gone = await world.grid.patch(f"/households/{hid}", json={"removed": True}, headers=headers)
    assert gone.status_code == 200 and gone.json()["until"] is not None
    assert hid not in {d["household"] for d in await world.doors(G1)}
    again = await world.grid.patch(
        f"/households/{hid}", json={"occupancy": "rented"}, headers=headers
    )
    assert again.status_code == 409

    events = await _grid_records(world, hid, 3)
    assert [(e.data.change, e.data.occupancy, e.data.removed) for e in events] == [
        (1, "rented", False),
        (2, "office", False),
        (3, "office", True),
    ]
    assert all(e.data.case_id == G1 and e.type == "gridloop.grid.household_changed" for e in events)

    # A door of the pack's register (revision 1, as the pack registered it) changes too.
    [pack_door, *_] = [d for d in await world.doors(G1) if d["since"] is None]
    moved = await world.grid.patch(
        f"/households/{pack_door['household']}", json={"occupancy": "vacant"}, headers=headers
    )
    assert (moved.status_code, moved.json()["occupancy"]) == (200, "vacant"), moved.text
    [told] = await _grid_records(world, pack_door["household"], 1)
    assert (told.data.change, told.data.occupancy) == (2, "vacant")


# --- visits ---------------------------------------------------------------------------------------


async def test_a_visit_sent_twice_is_logged_once(world: World) -> None:
    doors = [d["household"] for d in await world.doors(G1)][:3]
    body = _visit(doors, {"type": "need", "text": "老人需要助餐服务", "household": doors[0]})
    key = str(uuid.uuid4())
    first = await world.post(f"/grids/{G1}/visits", body, "zhao", key)
    assert first.status_code == 202, first.text
    again = await world.post(f"/grids/{G1}/visits", body, "zhao", key)
    assert (again.status_code, again.json()) == (202, first.json())
    visit = first.json()
    assert (visit["staff"], visit["households"]) == ("GM-0001", doors)
    assert await world.db["grid_visits"].count_documents({"_id": visit["visit_id"]}) == 1

    [logged] = await _grid_records(world, visit["visit_id"], 1)
    assert logged.type == "gridloop.grid.visit_logged"
    assert (logged.data.case_id, logged.data.staff, logged.data.households) == (
        G1,
        "GM-0001",
        doors,
    )
    assert [f.type for f in logged.data.findings] == ["need"]

    other = await world.post(f"/grids/{G1}/visits", _visit(doors[:1]), "zhao", key)
    assert (other.status_code, other.json()["detail"][0]["type"]) == (
        422,
        "idempotency_key_reused",
    )
    # The other grid's staff see neither the visit nor the grid's log.
    assert (await world.get(f"/visits/{visit['visit_id']}", "qian")).status_code == 404
    month = clock.now().astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    assert (await world.get(f"/grids/{G1}/visits", "qian", period=month)).status_code == 403
    listed = await world.get(f"/grids/{G1}/visits", "centre", period=month)
    assert visit["visit_id"] in {v["visit_id"] for v in listed.json()}


async def test_a_visit_is_refused_by_field_and_changes_nothing(world: World) -> None:
    doors = [d["household"] for d in await world.doors(G1)]
    g2 = [d["household"] for d in await world.doors(G2)]
    cases = [
        (_visit([doors[0], g2[0]]), ["body", "households", "1"]),
        (_visit(doors[:1], ago=-2), ["body", "at"]),
        (_visit(doors[:1], {"type": "gossip", "text": "x"}), ["body", "findings", 0, "type"]),
    ]
    for body, loc in cases:
        answer = await world.post(f"/grids/{G1}/visits", body, "zhao")
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == loc
    foreign = await world.post(f"/grids/{G1}/visits", _visit(doors[:1]), "qian")
    assert foreign.status_code == 403
    assert await world.db["grid_visits"].count_documents({}) == 0


# --- a finding becomes a case --------------------------------------------------------------------


async def test_a_finding_becomes_a_case_in_one_action_once(world: World) -> None:
    doors = [d["household"] for d in await world.doors(G1)][:2]
    finding = {"type": "sanitation", "text": "楼下垃圾堆放三天", "household": doors[1]}
    logged = await world.post(f"/grids/{G1}/visits", _visit(doors, finding), "zhao")
    visit = logged.json()["visit_id"]
    path = f"/visits/{visit}/findings/0/case"
    ask = {"point": INSIDE_G1, "kind": "event", "class_code": "0102"}

    bad = await world.post(path, ask | {"class_code": "9999"}, "zhao")  # intake refuses it
    assert bad.status_code == 422, bad.text
    assert bad.json()["detail"][0]["loc"] == ["body", "class_code"]
    assert (await world.get(f"/visits/{visit}", "zhao")).json()["findings"][0]["case_id"] is None
    assert (await world.post(path, ask, "qian")).status_code == 403

    made = await world.post(path, ask, "zhao")
    assert made.status_code == 202, made.text
    case_id = made.json()["case_id"]
    assert made.json()["kind"] == "event"
    again = await world.post(path, ask, "zhao")
    assert (again.status_code, again.json()["case_id"]) == (202, case_id)
    shown = (await world.get(f"/visits/{visit}", "centre")).json()
    assert (shown["findings"][0]["case_id"], shown["findings"][0]["kind"]) == (case_id, "event")

    # Intake holds one case, reported by the grid person through the handheld's channel.
    assert await world.db["case_heads"].count_documents({"_id": case_id}) == 1
    reported = await read_topic(
        world.kafka, named(world.namespace, "reports"), lambda rs: _reported(rs, case_id)
    )
    [first] = [decode(r.value, r.headers) for r in reported if r.key == case_id.encode()][:1]
    assert isinstance(first.data, CaseReported)
    assert first.data.channel == "supervisor"
    assert (first.data.actor.role, first.data.actor.id) == ("grid_staff", "GM-0001")
    assert first.data.class_code == "0102"
    [told] = await _grid_records(world, case_id, 1)
    assert told.type == "gridloop.grid.finding_reported"
    assert (told.data.visit, told.data.finding, told.data.finding_type) == (visit, 0, "sanitation")


def _reported(records: list[Any], case_id: str) -> bool:
    return any(r.key == case_id.encode() for r in records)


# --- coverage ---------------------------------------------------------------------------------


async def test_coverage_is_the_share_of_households_visited_this_month(world: World) -> None:
    doors = await world.doors(G1)
    occupied = [d["household"] for d in doors if d["occupancy"] != "vacant"]
    vacant = [d["household"] for d in doors if d["occupancy"] == "vacant"]
    month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    before = await world.get(f"/grids/{G1}/coverage", "zhao", period=month)
    assert before.status_code == 200, before.text
    assert (before.json()["households"], before.json()["visited"]) == (len(occupied), 0)

    await world.post(f"/grids/{G1}/visits", _visit(occupied[:2] + vacant[:1], ago=0.1), "zhao")
    await world.post(f"/grids/{G1}/visits", _visit(occupied[1:4], ago=0.05), "zhao")
    after = (await world.get(f"/grids/{G1}/coverage", "lead", period=month)).json()
    assert (after["households"], after["visited"]) == (len(occupied), 4)
    assert after["ratio"] == pytest.approx(4 / len(occupied))
    assert set(after["unvisited"]) == set(occupied[4:])

    assert (await world.get(f"/grids/{G1}/coverage", "qian", period=month)).status_code == 403
    bad = await world.get(f"/grids/{G1}/coverage", "zhao", period="2026-13")
    assert (bad.status_code, bad.json()["detail"][0]["loc"]) == (422, ["query", "period"])


async def test_a_visit_claimed_but_never_published_is_published_by_its_retry(
    world: World,
) -> None:
    """The process died between the claim and the publication (the fault suite's
    `claimed`): the visit's document holds its event in the outbox. The handheld's retry
    publishes it (the same event id) and gets the visit's answer."""
    doors = [d["household"] for d in await world.doors(G1)][:1]
    body, key = _visit(doors), str(uuid.uuid4())
    zhao = Principal(Role.grid_staff, "GM-0001")
    sent = VisitIn.model_validate(body)
    log = LogVisit(visit_id(zhao, key), G1, zhao, sent.at.astimezone(UTC), tuple(doors))
    register = await VisitStore(world.db).register(G1)
    visit = decide_visit(log, register, [G1], clock.now())
    envelope = Envelope(visit_logged(visit, zhao), SOURCE, clock.now())
    asked = Asked(key, f"{G1}\n{sent.model_dump_json()}")
    assert await VisitStore(world.db).claim_visit(visit, asked.fingerprint, [envelope])

    retried = await world.post(f"/grids/{G1}/visits", body, "zhao", key)
    assert (retried.status_code, retried.json()["visit_id"]) == (202, visit.id)
    [published] = await _grid_records(world, visit.id, 1)
    assert published.id == envelope.id
    stored = await world.db["grid_visits"].find_one({"_id": visit.id})
    assert stored is not None and stored["outbox"] == []


async def test_a_dispute_finding_becomes_a_dispute_in_one_action(world: World) -> None:
    """Runs once intake takes disputes (the disputes branch: a report of kind `dispute`
    naming one of the pack's dispute types, sla.yaml `disputes.types`)."""
    if getattr(world.pack.sla, "disputes", None) is None:
        pytest.skip("this tree's intake takes no disputes yet (the disputes branch adds them)")
    doors = [d["household"] for d in await world.doors(G1)][:1]
    finding = {"type": "dispute", "text": "楼上漏水，邻里争执", "household": doors[0]}
    logged = await world.post(f"/grids/{G1}/visits", _visit(doors, finding), "zhao")
    visit = logged.json()["visit_id"]
    ask = {"point": INSIDE_G1, "class_code": "0101"}  # 邻里纠纷 in the demo's sla.yaml
    made = await world.post(f"/visits/{visit}/findings/0/case", ask, "zhao")
    assert made.status_code == 202, made.text
    assert made.json()["kind"] == "dispute"
    case_id = made.json()["case_id"]
    reported = await read_topic(
        world.kafka, named(world.namespace, "reports"), lambda rs: _reported(rs, case_id)
    )
    [first] = [decode(r.value, r.headers) for r in reported if r.key == case_id.encode()][:1]
    assert isinstance(first.data, CaseReported)
    assert (first.data.kind, first.data.class_code, first.data.grid_code) == ("dispute", "0101", G1)
    assert first.data.actor.role == "grid_staff"


async def test_the_register_seeded_in_the_background_is_whole_when_first_read(
    world: World,
) -> None:
    """The service answers while the pack's register is written (a generated district's
    takes half a minute); the first read waits for it rather than show part of it."""
    fresh = world.db.client[f"test_{uuid.uuid4().hex[:12]}"]
    try:
        visits = await Visits.build(world.service, fresh, IntakeClient("http://nowhere"), True)
        admin = Principal(Role.admin, "ops")
        doors = await visits.register(admin, G2)
        assert len(doors) == len(world.pack.households.of(G2))
        total = await fresh["grid_households"].count_documents({})
        assert total == len(world.pack.households)
    finally:
        await world.db.client.drop_database(fresh.name)


async def test_other_services_read_the_findings_by_type(world: World) -> None:
    """The monthly report's demand analysis (民情分析) counts what visits found through the
    kernel's read side, by type, in a period and in some grids."""
    g1 = [d["household"] for d in await world.doors(G1)][:2]
    g2 = [d["household"] for d in await world.doors(G2)][:1]
    need, hazard = {"type": "need", "text": "助餐"}, {"type": "fire_hazard", "text": "杂物"}
    await world.post(f"/grids/{G1}/visits", _visit(g1, need, hazard, need), "zhao")
    await world.post(f"/grids/{G2}/visits", _visit(g2, need), "qian")
    await world.post(f"/grids/{G1}/visits", _visit(g1, hazard, ago=24 * 20), "zhao")
    now = clock.now()
    today = await findings_by_type(world.db, now - timedelta(days=1), now)
    assert today == {"need": 3, "fire_hazard": 1}
    assert await findings_by_type(world.db, now - timedelta(days=1), now, [G2]) == {"need": 1}
    month = await findings_by_type(world.db, now - timedelta(days=30), now, [G1])
    assert month == {"need": 2, "fire_hazard": 2}


async def test_a_visit_made_before_a_release_is_still_logged_when_sent_later(
    world: World,
) -> None:
    """An offline handheld sends a visit after its grid person was released from the grid:
    made while they worked it, it is theirs; one made after is not."""
    doors = [d["household"] for d in await world.doors(G1)][:1]
    released = await world.post(
        f"/grids/{G1}/staff/GM-0001/release", {"role": "grid_manager"}, "admin"
    )
    assert released.status_code == 200, released.text
    before = await world.post(f"/grids/{G1}/visits", _visit(doors, ago=1), "zhao")
    assert before.status_code == 202, before.text
    after = await world.post(f"/grids/{G1}/visits", _visit(doors, ago=-1 / 60), "zhao")
    assert (after.status_code, after.json()["detail"][0]["loc"]) == (403, ["path", "grid"])
    assert (await world.get(f"/grids/{G1}/households", "zhao")).status_code == 403


async def test_names_where_the_city_keeps_them_go_to_allowed_roles_audited_never_logged(
    servers: Servers, tmp_path: Path
) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(DEMO_CITY_PACK, pack)
    city = yaml.safe_load((pack / "city.yaml").read_text(encoding="utf-8"))
    city["households"] = {"names": True}
    (pack / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), encoding="utf-8")
    rows = (
        f"grid,building,door,occupancy,name\n{G1},3号楼,101,rented,张三丰\n{G1},3号楼,102,office,\n"
    )
    (pack / "households.csv").write_text(rows, encoding="utf-8")
    async with visits_world(servers, pack) as world:
        doors = await world.doors(G1, "zhao")
        assert [d["name"] for d in doors] == ["张三丰", None]
        assert (await world.get(f"/grids/{G1}/households", "department")).status_code == 403
        [read] = await world.db["audit"].find({"action": "read household names"}).to_list()
        assert (read["actor"]["id"], read["grid"], read["fields"]) == (
            "GM-0001",
            G1,
            ["households.name"],
        )
        assert "张三丰" not in str(read)
        hid = doors[0]["household"]
        headers = world.auth("zhao")
        renamed = await world.grid.patch(
            f"/households/{hid}",
            json={"name": "李四光", "occupancy": "owner_occupied"},
            headers=headers,
        )
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["name"] == "李四光"
        await world.post(f"/grids/{G1}/visits", _visit([hid]), "zhao")
        records = await read_topic(
            world.kafka, named(world.namespace, "grid"), lambda rs: len(rs) >= 2
        )
        assert all(
            "张三丰".encode() not in r.value and "李四光".encode() not in r.value for r in records
        )
        assert {decode(r.value, r.headers).type for r in records} == {
            "gridloop.grid.household_changed",
            "gridloop.grid.visit_logged",
        }
