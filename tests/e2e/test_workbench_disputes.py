"""A tier office's disputes (矛盾纠纷) in a real browser, on the whole system: a resident
reports a dispute; its grid manager (staff.yaml: GM-0003 works grid 110101001002001) sees
it held by the grid with its light, and escalates it as beyond the grid's authority (a
blank reason is refused beside it); the community office sees it, cannot close it before
the parties confirm (refused beside the reason why not), records both parties'
confirmation (验收) and closes it. The breach path (a tier's limit passing) is the
integration test's (tests/integration/test_disputes.py): the demo pack gives a grid three
working days.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import async_playwright, expect
from pymongo import AsyncMongoClient

from gridloop.access import Role
from gridloop.audit import AuditTrail
from gridloop.cases.reader import CaseReader
from gridloop.embedded import free_port
from gridloop.kafka.tail import tail
from gridloop.mongo import Document
from gridloop.people import People
from services.console.app import Console, create_app
from services.console.live import Live
from services.console.throttle import Throttle
from tests.e2e.conftest import Running
from tests.e2e.test_workbench import CHROMIUM, PASSWORD, QUIET, shot, sign_in
from tests.helpers import eventually, serving

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium (Debian's `chromium`) is absent; `make tools` installs it as root",
)
GRID, COMMUNITY = "110101001002001", "001002"
# Inside GRID, away from the other browser tests' reports (a dispute is never merged anyway).
DISPUTE = {
    "channel": "website",
    "kind": "dispute",
    "class_code": "0103",  # 物业纠纷 property management
    "point": {"lon": 116.4025, "lat": 39.92045},
    "description": "物业费争议 a quarrel over the service charge",
}
PEOPLE = {
    "sun.san": (Role.grid_staff, "GM-0003", "孙三"),  # the grid's manager (staff.yaml)
    "zhao.hui": (Role.tier_office, COMMUNITY, "赵慧"),  # 智德社区 mediation office
}


@pytest_asyncio.fixture(loop_scope="session")
async def tier_console(running: Running) -> AsyncIterator[str]:
    """The console on the running system, acting through its dispatch; the grid manager
    and the community office may sign in."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        running.system.env["MONGODB_URI"], tz_aware=True
    )
    db = client[running.system.env["GRIDLOOP_MONGODB_DATABASE"]]
    people = People(db)
    await people.people.delete_many({"_id": {"$in": list(PEOPLE)}})
    for username, (role, subject, name) in PEOPLE.items():
        await people.add(username, PASSWORD, role, subject, name)
    reader = CaseReader(db)
    live = Live(reader)
    console = Console(
        people, reader, AuditTrail(db), running.system.url("dispatch"), Throttle(), live
    )
    console.intake_url = running.system.url("intake")
    console.pack = running.pack
    stop = asyncio.Event()
    following = asyncio.create_task(tail(running.kafka, live.on_events, stop, running.namespace))
    port = free_port()
    async with serving(create_app(console), port):
        yield f"http://127.0.0.1:{port}"
    stop.set()
    await following
    await client.close()


async def reported_dispute(running: Running) -> str:
    async with httpx.AsyncClient(base_url=running.system.url("intake")) as resident:
        reported = await resident.post("/reports", json=DISPUTE)
    assert reported.status_code == 202, reported.text
    case_id: str = reported.json()["case_id"]
    reader_client: AsyncMongoClient[Document] = AsyncMongoClient(
        running.system.env["MONGODB_URI"], tz_aware=True
    )
    reader = CaseReader(reader_client[running.system.env["GRIDLOOP_MONGODB_DATABASE"]])
    try:
        await eventually(lambda: reader.record(case_id), what=f"{case_id} projected")
    finally:
        await reader_client.close()
    return case_id


async def _case(running: Running, case_id: str) -> dict[str, Any]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        running.system.env["MONGODB_URI"], tz_aware=True
    )
    try:
        record = await CaseReader(client[running.system.env["GRIDLOOP_MONGODB_DATABASE"]]).record(
            case_id
        )
        assert record is not None
        return record.model_dump()
    finally:
        await client.close()


async def test_a_dispute_escalated_by_its_grid_and_closed_by_the_community(
    running: Running, tier_console: str, tmp_path: Path
) -> None:
    case_id = await reported_dispute(running)
    console = tier_console
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        grid = await browser.new_page(viewport={"width": 1280, "height": 900})
        community = await browser.new_page(viewport={"width": 1280, "height": 900})

        # The grid manager: the dispute held by the grid, on time.
        await sign_in(grid, console, "sun.san")
        await grid.goto(console + "/disputes")
        await expect(grid.get_by_role("heading", name="矛盾纠纷调处")).to_be_visible()
        row = grid.locator(f"#queue-held tr[data-case='{case_id}']")
        await expect(row).to_contain_text("网格")
        await expect(row.locator(".light")).to_have_text("未超时")
        # The grid's deadline on the pack's office-hours clock, in the city's time (a test
        # run at night saw it fall at 17:30, the end of office hours; by day it does not).
        ladder = running.pack.sla.disputes
        assert ladder is not None
        due, _ = ladder.deadline("grid", (await _case(running, case_id))["reported_at"])
        local = due.astimezone(ZoneInfo(running.pack.city.timezone))
        await expect(row.locator(".deadline")).to_contain_text(local.strftime("%Y-%m-%d %H:%M"))
        await shot(grid, tmp_path, "disputes-grid")
        await row.get_by_role("button", name="上报上级").click()  # no reason: refused
        await expect(grid.locator(f"#reason-{case_id}-error")).to_be_visible()
        await row.get_by_label("超出本级权限的理由").fill(
            "涉及物业公司合同 the contract is the street's"
        )
        await row.get_by_role("button", name="上报上级").click()
        await expect(grid.locator("#done")).to_contain_text("已上报")
        await expect(row).to_have_count(0)

        # The community office: held there now; closing needs the parties' confirmation.
        await sign_in(community, console, "zhao.hui")
        await expect(community.get_by_role("heading", name="矛盾纠纷调处")).to_be_visible()
        row = community.locator(f"#queue-held tr[data-case='{case_id}']")
        await expect(row).to_contain_text("社区")
        await row.get_by_role("button", name="结案").click()
        await expect(community.locator(f"#unconfirmed-{case_id}-error")).to_be_visible()
        await row.get_by_label("申请人", exact=True).check()
        await row.get_by_label("被申请人", exact=True).check()
        await row.get_by_role("button", name="记录验收").click()
        await expect(community.locator("#done")).to_contain_text("已记录验收")
        await expect(row.locator(".confirmed")).to_have_text("已确认: 申请人、被申请人")
        await shot(community, tmp_path, "disputes-community")
        await row.get_by_label("结案说明").fill("双方达成协议 the parties agreed")
        await row.get_by_role("button", name="结案").click()
        await expect(community.locator("#done")).to_contain_text("已结案")
        await expect(row).to_have_count(0)
        await browser.close()

    case = await _case(running, case_id)
    assert case["state"] == "closed" and case["tier"] == "community"
    steps = [e["type"] for e in case["timeline"]]
    assert "case.dispute_escalated" in steps and "case.dispute_confirmed" in steps
    [closed] = [e for e in case["timeline"] if e["type"] == "case.dispute_closed"]
    assert closed["data"]["confirmed"] is True
    assert closed["actor"] == {"role": "tier_office", "id": COMMUNITY, "person": "zhao.hui"}
