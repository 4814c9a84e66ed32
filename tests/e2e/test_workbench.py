"""The workbench in a real browser (Playwright driving Debian's Chromium), as a department's
staff member uses it, on the whole system: a supervisor's report is dispatched to ROADS;
wang.li of ROADS signs in (after a wrong password), finds the case in the queue "to
acknowledge", acknowledges it, tries to return it without a reason (the API's refusal is
shown beside the field and nothing changes), marks it handled with a note, and sees the
timeline; signed out, the session no longer opens the API.

Screenshots are kept in the test's directory, and copied to docs/img/console-*.png when
GRIDLOOP_UPDATE_SCREENSHOT=1 (so a test run leaves the checkout as it was).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, async_playwright, expect
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
from tests.e2e.test_closed_loop import as_supervisor, case_in_state, intake_client
from tests.helpers import serving

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium (Debian's `chromium`) is absent; `make tools` installs it as root",
)
QUIET = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = Axe()
DOCS_IMG = Path(__file__).parents[2] / "docs" / "img"
PASSWORD = "road-works-2026"
REPORT = {
    "channel": "supervisor",
    "kind": "event",
    "class_code": "0401",  # road collapse → ROADS
    # Not where test_one_deadline reports its collapse: a second report within 50 m would
    # be merged into that case (a duplicate), never dispatched on its own.
    "point": {"lon": 116.4025, "lat": 39.9205},
    "description": "路面塌陷 the pavement gave way",
    "reporter": {"id": "SUP-0004"},
}


CITIZEN_REPORT = {
    "channel": "website",
    "kind": "event",
    "class_code": "0102",  # exposed garbage: a citizen's report is verified first
    "point": {"lon": 116.4005, "lat": 39.9202},  # away from the other tests' reports
    "description": "测试 a test message, nothing there",
}


@pytest_asyncio.fixture(loop_scope="session")
async def console(running: Running) -> AsyncIterator[str]:
    """The console on the running system's database, acting through its dispatch service;
    wang.li of ROADS may sign in."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        running.system.env["MONGODB_URI"], tz_aware=True
    )
    db = client[running.system.env["GRIDLOOP_MONGODB_DATABASE"]]
    people = People(db)
    await people.people.delete_many({"_id": {"$in": ["wang.li", "zhao.min", "liu.yang"]}})
    await people.add("wang.li", PASSWORD, Role.department, "ROADS", "王力")
    await people.add("zhao.min", PASSWORD, Role.command_centre, "centre", "赵敏")
    await people.add("liu.yang", PASSWORD, Role.supervision_centre, "centre", "刘洋")
    reader = CaseReader(db)
    live = Live(reader)
    dispatch = running.system.url("dispatch")
    departments = {code: d.name for code, d in running.pack.departments.items()}
    console = Console(people, reader, AuditTrail(db), dispatch, Throttle(), live, departments)
    console.intake_url = running.system.url("intake")
    console.pack = running.pack
    app = create_app(console)
    stop = asyncio.Event()
    following = asyncio.create_task(tail(running.kafka, live.on_events, stop, running.namespace))
    port = free_port()
    async with serving(app, port):
        yield f"http://127.0.0.1:{port}"
    stop.set()
    await following
    await client.close()


async def sign_in(page: Page, console: str, username: str) -> None:
    await page.goto(console + "/login")
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()


async def shot(page: Page, tmp: Path, name: str) -> None:
    """Photograph the screen, and check it with axe-core: no serious or critical
    violation (WCAG 2.1 A and AA rules, and axe's best practices)."""
    found = await AXE.run(page)
    grave = [v for v in found.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not grave, f"{name}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}" for v in grave
    )
    picture = tmp / f"console-{name}.png"
    await page.screenshot(path=picture, full_page=True)
    if os.environ.get("GRIDLOOP_UPDATE_SCREENSHOT") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(picture, DOCS_IMG / picture.name)


async def dispatched_case(running: Running, lon: float = 116.4025) -> str:
    intake = await intake_client(running)
    report = REPORT | {"point": {"lon": lon, "lat": 39.9205}}
    async with intake:
        reported = await intake.post(
            "/reports", json=report, headers=await as_supervisor(running, "SUP-0004")
        )
        assert reported.status_code == 202, reported.text
        case_id: str = reported.json()["case_id"]
        await case_in_state(intake, case_id, "dispatched")
    return case_id


async def test_a_department_works_a_case_in_the_browser(
    running: Running, console: str, tmp_path: Path
) -> None:
    case_id = await dispatched_case(running)
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        page = await browser.new_page(viewport={"width": 1280, "height": 800})

        # Not signed in: the console sends the person to sign in.
        await page.goto(console + "/")
        await expect(page.get_by_role("heading", name="登录")).to_be_visible()
        await shot(page, tmp_path, "sign-in")

        # A wrong password: one message, nothing else said (no hint which part was wrong).
        await page.get_by_label("用户名").fill("wang.li")
        await page.get_by_label("密码").fill("not-the-password")
        await page.get_by_role("button", name="登录").click()
        await expect(page.locator("#form-error")).to_have_text("用户名或密码错误")
        await shot(page, tmp_path, "sign-in-refused")

        await page.get_by_label("密码").fill(PASSWORD)
        await page.get_by_role("button", name="登录").click()
        await expect(page.get_by_role("heading", name="我的待办")).to_be_visible()
        new = page.locator("#queue-new")
        row = new.locator(f"tr[data-case='{case_id}']")
        await expect(row).to_be_visible()
        # A road collapse is due within the hour: within two hours, its light is yellow.
        await expect(row.locator(".light")).to_have_text("将超时")
        await shot(page, tmp_path, "queue")

        # Live: a case dispatched to ROADS while the queue is open shows without a reload.
        await page.evaluate("window.notReloaded = true")
        second = await dispatched_case(running, lon=116.4035)  # ≈ 85 m away: not a duplicate
        await expect(new.locator(f"tr[data-case='{second}']")).to_be_visible()
        assert await page.evaluate("window.notReloaded === true")

        # The case page: acknowledge (签收).
        await row.get_by_role("link").click()
        await expect(page.locator("#state")).to_contain_text("dispatched")
        await page.get_by_role("button", name="签收").click()
        await expect(page.locator("#done")).to_contain_text("签收")
        await expect(page.locator("#timeline")).to_contain_text("case.acknowledged")

        # A return without a reason: the API's refusal beside the field; nothing changes.
        await page.get_by_role("button", name="回退").click()
        await expect(page.locator("#return-reason-error")).to_be_visible()
        await expect(page.locator("#state")).to_contain_text("dispatched")
        await shot(page, tmp_path, "form-error")

        # Handled, with a note.
        await page.get_by_label("处理说明").fill("已回填路面 the hole is filled")
        await page.get_by_role("button", name="处理完毕").click()
        await expect(page.locator("#state")).to_contain_text("handled")
        timeline = page.locator("#timeline")
        await expect(timeline).to_contain_text("handled")
        await expect(timeline).to_contain_text("已回填路面")
        await shot(page, tmp_path, "case")

        # The second case is not ROADS' to handle: returned, with the reason.
        await page.goto(f"{console}/cases/{second}")
        await page.get_by_label("回退理由").fill("不是道路问题 not a road matter")
        await page.get_by_role("button", name="回退").click()
        await expect(page.locator("#state")).to_contain_text("returned")

        # Back in the queue, the case is done; in English on the switch.
        await page.get_by_role("link", name="返回").click()
        await expect(page.locator(f"#queue-done tr[data-case='{case_id}']")).to_be_visible()
        await page.get_by_role("link", name="English").click()
        await expect(page.get_by_role("heading", name="My queue")).to_be_visible()
        await shot(page, tmp_path, "queue-en")

        cookies = await page.context.cookies()
        [token] = [c["value"] for c in cookies if c["name"] == "gridloop_session"]
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

        # The command centre's dispatcher finds the returned case and dispatches it again.
        centre = await browser.new_page(viewport={"width": 1280, "height": 800})
        await sign_in(centre, console, "zhao.min")
        returned = centre.locator(f"#queue-returned tr[data-case='{second}']")
        await expect(returned).to_be_visible()
        await shot(centre, tmp_path, "centre")
        await returned.get_by_role("link").click()
        await centre.get_by_label("派往部门").select_option("SANITATION")
        await centre.get_by_label("派遣说明").fill("环卫处置 sanitation's")
        await centre.get_by_role("button", name="派遣").click()
        await expect(centre.locator("#state")).to_contain_text("dispatched")
        await expect(centre.locator("#department")).to_have_text("SANITATION")
        await shot(centre, tmp_path, "centre-case")

        # The intake operator sees a citizen's report arrive live, and voids it.
        operator = await browser.new_page(viewport={"width": 1280, "height": 800})
        await sign_in(operator, console, "liu.yang")
        await expect(operator.get_by_role("heading", name="受理台")).to_be_visible()
        async with httpx.AsyncClient(base_url=running.system.url("intake")) as citizen:
            sent = await citizen.post("/reports", json=CITIZEN_REPORT)
        assert sent.status_code == 202, sent.text
        report = sent.json()["case_id"]
        arrived = operator.locator(f"#queue-verifying tr[data-case='{report}']")
        await expect(arrived).to_be_visible()
        await shot(operator, tmp_path, "intake")
        await arrived.get_by_role("link").click()
        await operator.get_by_role("button", name="作废").click()  # no reason: refused
        await expect(operator.locator("#void-reason-error")).to_be_visible()
        await expect(operator.locator("#state")).to_contain_text("reported")
        await operator.get_by_label("作废理由").fill("测试上报 a test message")
        await operator.get_by_role("button", name="作废").click()
        await expect(operator.locator("#state")).to_contain_text("voided")
        await browser.close()

    # Signed out, the session's token opens no API any more.
    async with httpx.AsyncClient(base_url=running.system.url("dispatch")) as dispatch:
        tried = await dispatch.post(
            f"/departments/ROADS/cases/{case_id}/acknowledge",
            json={"handler_id": "wang.li"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert tried.status_code == 401

    # Signing in and out is in the audit trail, with the person, never the password.
    client: AsyncMongoClient[Document] = AsyncMongoClient(running.system.env["MONGODB_URI"])
    try:
        db = client[running.system.env["GRIDLOOP_MONGODB_DATABASE"]]
        found = (
            await db["audit"]
            .find({"kind": "sign-in", "username": "wang.li"})
            .sort("at", 1)
            .to_list()
        )
    finally:
        await client.close()
    assert [r["action"] for r in found][-3:] == ["sign-in refused", "signed in", "signed out"]
    assert found[-1]["actor"] == {"role": "department", "id": "ROADS", "person": "wang.li"}
    assert PASSWORD not in str(found)
