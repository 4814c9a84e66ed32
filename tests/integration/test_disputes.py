"""A dispute (矛盾纠纷) up the tiers on the real servers, the services as `gridloop up` runs
them: reported through intake, its grid's limit passes (a compressed clock: the test's pack
gives the grid three seconds of natural time), the SLA engine's breach takes it up to the
community once — also across a restart of the engine and of dispatch —, the grid explains,
the community closes it with the parties' confirmation, and evaluation counts it as solved
at the community."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import ConsumerRecord

from gridloop.auth import CredentialStore, Role
from gridloop.calendar import SHANGHAI
from gridloop.config import DEMO_CITY_PACK
from gridloop.embedded import free_ports
from gridloop.topology import named
from system.up import PORT_ENV, System
from tests.conftest import Servers
from tests.helpers import eventually, read_topic

GRID = "110101001002001"  # community 001002 (Zhide), street 001, district 110101
COMMUNITY = "001002"
POINT = {"lon": 116.4025, "lat": 39.92045}  # inside GRID
DISPUTE = {
    "channel": "website",
    "kind": "dispute",
    "class_code": "0101",  # 邻里纠纷 neighbours
    "point": POINT,
    "description": "楼上漏水，邻里争执 water leaking from upstairs, the neighbours quarrel",
}
# The grid has three seconds; every tier above it a day (the test closes it long before).
FAST_LADDER = {
    "clock": "natural",
    "types": {"0101": "邻里纠纷 neighbours"},
    "tiers": [
        {"tier": "grid", "limit": "PT3S"},
        {"tier": "community", "limit": "P1D"},
        {"tier": "street", "limit": "P1D"},
        {"tier": "district", "limit": "P1D"},
    ],
}


def write_pack(target: Path) -> Path:
    shutil.copytree(DEMO_CITY_PACK, target)
    sla: dict[str, Any] = yaml.safe_load((target / "sla.yaml").read_text(encoding="utf-8"))
    sla["disputes"] = FAST_LADDER
    (target / "sla.yaml").write_text(yaml.safe_dump(sla, allow_unicode=True), "utf-8")
    return target


@pytest.fixture
def system(servers: Servers, tmp_path: Path) -> Iterator[System]:
    namespace = f"disp{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "MONGODB_URI": servers.mongodb,
        "GRIDLOOP_MONGODB_DATABASE": f"{namespace}_db",
        "GRIDLOOP_NAMESPACE": namespace,
        "GRIDLOOP_CITY_PACK": str(write_pack(tmp_path / "citypack")),
        "GRIDLOOP_DATA_DIR": str(tmp_path / "data"),
        "GRIDLOOP_SLA_TICK_SECONDS": "0.2",
        "GRIDLOOP_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "GRIDLOOP_PUBLIC_RATE_LIMIT": "100000/minute",
        **free_ports(PORT_ENV.values()),
    }
    services = ("projections", "evaluation", "dispatch", "sla", "intake")
    running = System(env, tmp_path / "logs", services)
    try:
        running.start()
        yield running
    finally:
        running.stop()


async def bearer(system: System, role: Role, subject: str) -> dict[str, str]:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(system.env["MONGODB_URI"])
    try:
        db = client[system.env["GRIDLOOP_MONGODB_DATABASE"]]
        return {"Authorization": f"Bearer {await CredentialStore(db).issue(role, subject)}"}
    finally:
        await client.close()


def of_type(records: list[ConsumerRecord[bytes, bytes]], case_id: str, ce_type: str) -> int:
    return sum(
        1
        for r in records
        if r.key == case_id.encode() and dict(r.headers).get("ce_type") == ce_type.encode()
    )


async def test_a_dispute_breaches_at_the_grid_and_is_solved_at_the_community(
    system: System, servers: Servers
) -> None:
    centre = await bearer(system, Role.supervision_centre, "centre-disputes")
    grid = await bearer(system, Role.grid_staff, "GM-0003")  # its manager (staff.yaml)
    community = await bearer(system, Role.tier_office, COMMUNITY)
    intake = httpx.AsyncClient(base_url=system.url("intake"), headers=centre)
    dispatch = httpx.AsyncClient(base_url=system.url("dispatch"))
    async with intake, dispatch:
        async with httpx.AsyncClient(base_url=system.url("intake")) as resident:
            submitted = await resident.post("/reports", json=DISPUTE)
        assert submitted.status_code == 202, submitted.text
        case_id = submitted.json()["case_id"]

        async def at_the_community() -> dict[str, Any] | None:
            found = await intake.get(f"/cases/{case_id}")
            doc: dict[str, Any] = found.json() if found.status_code == 200 else {}
            return doc if doc.get("tier") == "community" else None

        case = await eventually(at_the_community, within=60, what="the breach's escalation")
        assert (case["state"], case["tier_office"], case["kind"]) == (
            "mediating",
            COMMUNITY,
            "dispute",
        )
        [up] = [e for e in case["timeline"] if e["type"] == "case.dispute_escalated"]
        assert (up["data"]["from_tier"], up["data"]["cause"]) == ("grid", "breach")
        # Never a department's: no filing, no dispatch, no verification task.
        steps = {e["type"] for e in case["timeline"]}
        assert not {"case.filed", "case.dispatched", "case.verified"} & steps

        # Once, also across a restart of the engine and of dispatch (the breach is read
        # again from the log; the head no longer has the grid holding it).
        for name in ("sla", "dispatch"):
            system.processes.pop(name).stop()
            system.start_service(name)

        def settled(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
            return of_type(records, case_id, "gridloop.sla.breach") >= 1

        sla = await read_topic(
            servers.kafka, named(system.env["GRIDLOOP_NAMESPACE"], "sla"), settled
        )
        assert of_type(sla, case_id, "gridloop.sla.breach") == 1

        # The grid was overdue and owes its explanation; its view says so.
        async def unexplained(office: dict[str, str]) -> list[str]:
            view = await dispatch.get("/disputes", headers=office)
            assert view.status_code == 200, view.text
            listed: list[str] = view.json()["unexplained"]
            return listed

        async def owed() -> bool:
            return case_id in await unexplained(grid)

        await eventually(owed, what="the grid's overdue dispute in its view")
        early = await dispatch.post(
            f"/disputes/{case_id}/close", json={}, headers=grid
        )  # the grid holds it no longer
        assert early.status_code == 403, early.text
        explained = await dispatch.post(
            f"/disputes/{case_id}/explanation",
            json={"explanation": "the parties were away until today"},
            headers=grid,
        )
        assert explained.status_code == 202, explained.text

        async def explained_now() -> bool:
            return case_id not in await unexplained(grid)

        await eventually(explained_now, what="the explanation in the grid's view")

        held = await dispatch.get("/disputes", headers=community)
        [mine] = [d for d in held.json()["disputes"] if d["case_id"] == case_id]
        assert (mine["held"], mine["tier"], mine["overdue"]) == (True, "community", False)

        # 验收: no closing before the parties confirm, or without the tier's reason why not.
        unconfirmed = await dispatch.post(f"/disputes/{case_id}/close", json={}, headers=community)
        assert unconfirmed.status_code == 422, unconfirmed.text
        assert unconfirmed.json()["detail"][0]["loc"] == ["body", "unconfirmed_reason"]
        parties = [{"side": "applicant"}, {"side": "respondent"}]
        confirmed = await dispatch.post(
            f"/disputes/{case_id}/confirm", json={"parties": parties}, headers=community
        )
        assert confirmed.status_code == 202, confirmed.text
        closed = await dispatch.post(
            f"/disputes/{case_id}/close", json={"note": "the pipe is fixed"}, headers=community
        )
        assert closed.status_code == 202, closed.text
        assert closed.json()["state"] == "closed"

        async def closed_with_history() -> dict[str, Any] | None:
            doc: dict[str, Any] = (await intake.get(f"/cases/{case_id}")).json()
            steps = [e["type"] for e in doc["timeline"]]
            done = doc["state"] == "closed" and "case.dispute_confirmed" in steps
            return doc if done and "case.dispute_explained" in steps else None

        case = await eventually(closed_with_history, what="the closed dispute's history")
        [closing] = [e for e in case["timeline"] if e["type"] == "case.dispute_closed"]
        assert closing["data"]["tier"] == "community" and closing["data"]["confirmed"] is True
        assert closing["actor"] == {"role": "tier_office", "id": COMMUNITY}
        # Among what the community closed (已调结), confirmed; the grid closed nothing.
        ended = (await dispatch.get("/disputes", headers=community)).json()["closed"]
        assert [(d["case_id"], d["confirmed"]) for d in ended] == [(case_id, True)]
        assert ended[0]["closed_at"] is not None
        assert (await dispatch.get("/disputes", headers=grid)).json()["closed"] == []

        # A dispute between residents is not a public service request (Open311).
        async with httpx.AsyncClient(base_url=system.url("intake")) as public:
            one = await public.get(f"/open311/v2/requests/{case_id}.json")
            assert one.status_code == 404, one.text
            listed = await public.get("/open311/v2/requests.json")
            assert listed.status_code == 200, listed.text
            assert case_id not in {r["service_request_id"] for r in listed.json()}

    # Evaluation: solved at the community, not at the grid.
    month = datetime.now(SHANGHAI).strftime("%Y-%m")
    async with httpx.AsyncClient(base_url=system.url("evaluation"), headers=centre) as scores:

        async def solved(level: str, entity: str) -> dict[str, int] | None:
            found = await scores.get(f"/scores/{level}/{entity}/{month}")
            if found.status_code != 200:
                return None
            ratio: dict[str, int] | None = found.json()["indicators"].get("disputes_solved_here")
            return ratio if ratio and ratio["denominator"] else None

        at_community = await eventually(lambda: solved("community", COMMUNITY), what="scores")
        assert (at_community["numerator"], at_community["denominator"]) == (1, 1)
        at_grid = await eventually(lambda: solved("grid", GRID), what="the grid's score")
        assert (at_grid["numerator"], at_grid["denominator"]) == (0, 1)
