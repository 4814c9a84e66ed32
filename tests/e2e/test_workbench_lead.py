"""The shift lead (值班长) in a real browser, on the whole system: a department asks to
return a case (the city's pack makes a return wait for approval) and the shift lead
approves it; a department asks for an extension and the shift lead, who sees the deadline
it moves beside the current one, approves it; a parked case's department asks to resume it
(挂账恢复, waiting by the pack too) and the shift lead approves; the shift lead urges (督办)
the department on a case, the department sees the case marked in its queue, replies on the
case page, and the reply shows there.

The running system's pack returns at once (the demo pack's default, which the simulator
and the other browser tests rely on), so this module adds a dispatch process of its own to
the system (the same topics, database and consumer group) with a copy of the pack that
says `approvals: {return: true, resume: true, void: true}`, and an intake process with it
too (an operator's void waits), and points its console at them: only dispatch decides
whether a return waits, and only intake whether a void does.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
import yaml
from playwright.async_api import async_playwright, expect
from pymongo import AsyncMongoClient

from gridloop.access import Role
from gridloop.audit import AuditTrail
from gridloop.cases.reader import CaseReader
from gridloop.embedded import free_port, free_ports
from gridloop.kafka.tail import tail
from gridloop.mongo import Document
from gridloop.people import People
from services.console.app import Console, create_app
from services.console.live import Live
from services.console.throttle import Throttle
from system.up import PORT_ENV, System
from tests.e2e.conftest import Running
from tests.e2e.test_workbench import (
    CHROMIUM,
    PASSWORD,
    QUIET,
    dispatched_case,
    shot,
    sign_in,
)
from tests.helpers import eventually, serving

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium (Debian's `chromium`) is absent; `make tools` installs it as root",
)
# Road collapses (0401, ROADS) at lat 39.9205, away from the other tests' reports: ≥ 150 m
# from 116.4035 and 116.4075, and 68 m from each other (the duplicate radius is 50 m).
RETURNED_AT, URGED_AT = 116.4055, 116.4063
PARKED_AT = 116.4047  # 68 m west of RETURNED_AT
# A website report the operator voids: exposed garbage (0102, 30 m), away from the rest.
VOIDED_REPORT = {
    "channel": "website",
    "kind": "event",
    "class_code": "0102",
    "point": {"lon": 116.4018, "lat": 39.9207},
    "description": "垃圾 (a prank call)",
}
PEOPLE = {
    "chen.jie": (Role.shift_lead, "lead", "陈杰"),
    "zhou.qi": (Role.department, "ROADS", "周琦"),
    "lin.fang": (Role.supervision_centre, "centre", "林芳"),
}


@pytest.fixture(scope="module")
def approving(
    running: Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """A dispatch and an intake process of the running system whose pack makes returns,
    resumptions and voids wait for the shift lead; their addresses."""
    root = tmp_path_factory.mktemp("lead")
    pack = root / "citypack"
    shutil.copytree(running.system.env["GRIDLOOP_CITY_PACK"], pack)
    sla: dict[str, Any] = yaml.safe_load((pack / "sla.yaml").read_text(encoding="utf-8"))
    sla["approvals"] = {"return": True, "resume": True, "void": True}
    (pack / "sla.yaml").write_text(yaml.safe_dump(sla, allow_unicode=True), "utf-8")
    (root / "logs").mkdir()
    ports = free_ports(PORT_ENV[s] for s in ("dispatch", "intake"))  # their own
    env = running.system.env | {"GRIDLOOP_CITY_PACK": str(pack)} | ports  # the rest as is
    system = System(env, root / "logs", ("dispatch", "intake"))
    try:
        system.start()
        yield system.url("dispatch"), system.url("intake")
    finally:
        system.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def lead_console(running: Running, approving: tuple[str, str]) -> AsyncIterator[str]:
    """The console on the running system's database, acting through the approving
    dispatch; chen.jie (shift lead) and zhou.qi (ROADS) may sign in."""
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
    departments = {code: d.name for code, d in running.pack.departments.items()}
    dispatch, intake = approving
    console = Console(people, reader, AuditTrail(db), dispatch, Throttle(), live, departments)
    console.intake_url = intake
    console.pack = running.pack  # the approving pack's clocks are the running system's
    stop = asyncio.Event()
    following = asyncio.create_task(tail(running.kafka, live.on_events, stop, running.namespace))
    port = free_port()
    async with serving(create_app(console), port):
        yield f"http://127.0.0.1:{port}"
    stop.set()
    await following
    await client.close()


PIPELINE_MS = 20_000  # what a page or a probe waits for another service's news


async def _state(running: Running, case_id: str, state: str) -> dict[str, Any]:
    """The case as the projection shows it, once it is in `state`."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        running.system.env["MONGODB_URI"], tz_aware=True
    )
    reader = CaseReader(client[running.system.env["GRIDLOOP_MONGODB_DATABASE"]])

    async def probe() -> dict[str, Any] | None:
        record = await reader.record(case_id)
        return record.model_dump() if record and record.state == state else None

    try:
        return await eventually(probe, within=PIPELINE_MS / 1000, what=f"{case_id} {state}")
    finally:
        await client.close()


def _local(at: datetime) -> str:
    """A time as the console shows it (the demo city's zone)."""
    return at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")


async def test_the_shift_lead_approves_and_urges(
    running: Running, approving: tuple[str, str], lead_console: str, tmp_path: Path
) -> None:
    to_return = await dispatched_case(running, lon=RETURNED_AT)
    to_urge = await dispatched_case(running, lon=URGED_AT)
    console = lead_console
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        department = await browser.new_page(viewport={"width": 1280, "height": 800})
        lead = await browser.new_page(viewport={"width": 1280, "height": 900})

        # ROADS asks to return the first case: it waits for the shift lead, still ROADS'.
        await sign_in(department, console, "zhou.qi")
        await department.goto(f"{console}/cases/{to_return}")
        await department.get_by_label("回退理由").fill("塌陷在燃气管线上 the gas company's")
        await department.get_by_role("button", name="回退").click()
        await expect(department.locator("#done")).to_be_visible()
        await expect(department.locator("#state")).to_contain_text("dispatched")
        await expect(department.locator("#timeline")).to_contain_text("return_requested")

        # The shift lead's desk: the return waiting, approved.
        await sign_in(lead, console, "chen.jie")
        await expect(lead.get_by_role("heading", name="值班长工作台")).to_be_visible()
        row = lead.locator(f"#queue-requests tr[data-case='{to_return}']")
        await expect(row).to_contain_text("回退申请")
        await expect(row.locator(".moves")).to_have_text("退回指挥中心重新派遣")
        await row.get_by_label("审批意见").fill("同意退回 agreed")
        await row.get_by_role("button", name="同意", exact=True).click()
        await expect(lead.locator("#done")).to_be_visible()
        await expect(row).to_have_count(0)
        returned = await _state(running, to_return, "returned")
        assert returned["timeline"][-1]["actor"] == {"role": "shift_lead", "id": "chen.jie"}

        # ROADS asks for an extension of the second (through its API, as an integration
        # would); the desk shows the deadline it moves beside the current one.
        record = await _state(running, to_urge, "dispatched")
        current: datetime = record["deadline"]
        later = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
        token = await running.token(Role.department, "ROADS")
        async with httpx.AsyncClient(base_url=approving[0]) as dispatch:
            asked = await dispatch.post(
                f"/departments/ROADS/cases/{to_urge}/extension",
                json={"handler_id": "api", "deadline": later.isoformat(), "reason": "封路审批"},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert asked.status_code == 202, asked.text
        row = lead.locator(f"#queue-requests tr[data-case='{to_urge}']")
        # Live: the desk shows it without a reload, once dispatch → Kafka → projections has
        # (as long as `_state` allows, on a loaded machine).
        await expect(row).to_be_visible(timeout=PIPELINE_MS)
        await expect(row).to_contain_text("延期申请")
        await expect(row.locator(".current")).to_contain_text(_local(current))
        await expect(row.locator(".moves")).to_have_text(_local(later))
        await shot(lead, tmp_path, "approvals")
        await row.get_by_role("button", name="同意", exact=True).click()
        await expect(row).to_have_count(0)
        moved = await _state(running, to_urge, "dispatched")
        assert moved["deadline"] == later and moved["version"] == record["version"] + 1

        # 督办: the shift lead urges ROADS on it; a blank message is refused beside it.
        await lead.goto(f"{console}/urges/{to_urge}")
        await lead.get_by_role("button", name="督办", exact=True).click()
        await expect(lead.locator("#urge-message-error")).to_be_visible()
        await lead.get_by_label("督办内容").fill("今日务必处置 act today")
        await lead.get_by_role("button", name="督办", exact=True).click()
        await expect(lead.locator("#done")).to_be_visible()
        urged = lead.locator("#urges tbody tr")
        await expect(urged).to_contain_text("今日务必处置")
        await expect(urged).to_contain_text("待回复")
        await shot(lead, tmp_path, "urge")

        # ROADS sees the case marked in its queue, and replies on the case page.
        await department.goto(console + "/")
        marked = department.locator(f"tr[data-case='{to_urge}'] .urged")
        await expect(marked).to_have_text("督办")
        await shot(department, tmp_path, "queue-urged")
        await department.goto(f"{console}/cases/{to_urge}")
        await department.get_by_role("button", name="回复督办").click()  # blank: refused
        await expect(department.locator("#urge-reply-reply-error")).to_be_visible()
        await department.get_by_label("回复内容").fill("抢修队已到场 the crew is on site")
        await department.get_by_role("button", name="回复督办").click()
        await expect(department.locator("#done")).to_contain_text("回复督办")
        reply = department.locator("#urges tbody tr .reply")
        await expect(reply).to_contain_text("抢修队已到场")
        await shot(department, tmp_path, "urge-reply")

        # 挂账恢复: a parked case's resumption waits for the shift lead, who sees the
        # deadline it would set (moved by the time the case stood still) and approves.
        to_resume = await dispatched_case(running, lon=PARKED_AT)
        await _state(running, to_resume, "dispatched")
        async with httpx.AsyncClient(base_url=approving[0]) as dispatch:
            parking = await dispatch.post(
                f"/department/cases/{to_resume}/parking",
                json={"handler_id": "api", "reason": "等待燃气公司配合"},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert parking.status_code == 202, parking.text
        row = lead.locator(f"#queue-requests tr[data-case='{to_resume}']")
        await lead.goto(console + "/approvals")  # before or after the projection shows it
        await expect(row).to_contain_text("挂账申请", timeout=PIPELINE_MS)
        await row.get_by_role("button", name="同意", exact=True).click()
        await expect(row).to_have_count(0)
        await _state(running, to_resume, "parked")
        await department.goto(f"{console}/cases/{to_resume}")
        await department.get_by_label("恢复理由").fill("燃气公司已到场 the gas company is here")
        await department.get_by_role("button", name="恢复办理").click()
        await expect(department.locator("#done")).to_be_visible()
        await expect(department.locator("#state")).to_contain_text("parked")  # still: it waits
        await expect(department.locator("#timeline")).to_contain_text("resume_requested")
        await lead.goto(console + "/approvals")
        await expect(row).to_contain_text("挂账恢复申请")
        await expect(row.locator(".moves")).to_have_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d"))
        await shot(lead, tmp_path, "approvals-resume")
        await row.get_by_role("button", name="同意", exact=True).click()
        await expect(row).to_have_count(0)
        resumed = await _state(running, to_resume, "dispatched")
        assert resumed["timeline"][-1]["actor"] == {"role": "shift_lead", "id": "chen.jie"}
        assert resumed["timeline"][-1]["type"] == "case.resumed"

        # 作废: the intake operator's void waits for the shift lead, who approves it.
        async with httpx.AsyncClient(base_url=running.system.url("intake")) as citizen:
            sent = await citizen.post("/reports", json=VOIDED_REPORT)
        assert sent.status_code == 202, sent.text
        to_void = sent.json()["case_id"]
        await _state(running, to_void, "reported")
        operator = await browser.new_page(viewport={"width": 1280, "height": 800})
        await sign_in(operator, console, "lin.fang")
        await operator.goto(f"{console}/cases/{to_void}")
        await operator.get_by_label("作废理由").fill("重复来电，非城市管理问题 not a city problem")
        await operator.get_by_role("button", name="作废", exact=True).click()
        await expect(operator.locator("#done")).to_be_visible()
        await expect(operator.locator("#state")).to_contain_text("reported")  # it waits
        await expect(operator.locator("#timeline")).to_contain_text("void_requested")
        await lead.goto(console + "/approvals")
        row = lead.locator(f"#queue-requests tr[data-case='{to_void}']")
        await expect(row).to_contain_text("作废申请")
        await expect(row.locator(".moves")).to_have_text("作废，不再办理")
        await shot(lead, tmp_path, "approvals-void")
        await row.get_by_role("button", name="不同意").click()  # a denial needs a reason
        await expect(lead.locator(f"#reason-{to_void}-error")).to_be_visible()
        await row.get_by_role("button", name="同意", exact=True).click()
        await expect(row).to_have_count(0)
        voided = await _state(running, to_void, "voided")
        assert voided["timeline"][-1]["actor"] == {"role": "shift_lead", "id": "chen.jie"}
        assert voided["timeline"][-1]["reason"] == "重复来电，非城市管理问题 not a city problem"

        # The shift lead sees the reply, on the desk and in English on the switch.
        await lead.goto(console + "/approvals?lang=en")
        answered = lead.locator(f"#queue-urged tr[data-case='{to_urge}']")
        await expect(answered).to_contain_text("the crew is on site")
        await expect(lead.get_by_role("heading", name="Shift lead")).to_be_visible()
        await shot(lead, tmp_path, "approvals-en")
        await browser.close()
