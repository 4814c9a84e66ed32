"""The handheld (城管通) on a phone-sized Chromium, on the whole system (the fixtures and
helpers of `test_workbench.py`): a supervisor signs in and lands on their tasks — a
citizen's report to verify (核实) and a handled case to check (核查), each with its due time
and light; the network goes; they verify with a photo and file a new report with a photo,
a voice note (the fake microphone) and the phone's GPS point, both kept on the phone (the
outbox lists them); the network returns and both are sent — the report's answer lost on
the way, so the phone sends it again under its key; then the outbox is replayed whole. Each
arrived once: one verification, one new case, one upload of the photo. Offline again, they
check the handled case with a photo; it is closed once the network is back. Every screen
is checked with axe-core and photographed (`shot`: docs/img/console-handheld-*.png).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, Route, async_playwright, expect
from pymongo import AsyncMongoClient

from gridloop.access import Role
from gridloop.mongo import Document
from gridloop.people import People
from tests.e2e import test_workbench as workbench
from tests.e2e.conftest import Running
from tests.e2e.test_closed_loop import case_in_state, intake_client
from tests.e2e.test_workbench import CHROMIUM, PASSWORD, QUIET, dispatched_case, shot, sign_in
from tests.e2e.test_workbench_desks import png
from tests.helpers import eventually

console = workbench.console  # the fixture: the console on the running system
pytestmark = workbench.pytestmark  # Debian's Chromium, or skipped

SUPERVISOR = ("sun.hao", "SUP-0001", "孙浩")  # patrols grids 110101001001001 and …002
GRID_STAFF = ("he.ping", "GS-0001", "何平")  # a grid manager (网格员)
# An illegal structure (私搭乱建) a citizen reports in SUP-0001's grid 110101001001002, ≥ 500 m
# from the other tests' reports of its class.
CITIZEN = {
    "channel": "website",
    "kind": "event",
    "class_code": "0101",
    "point": {"lon": 116.4013, "lat": 39.9201},
    "description": "私搭乱建 a shed behind the school",
}
HERE = {"longitude": 116.4016, "latitude": 39.9207}  # the phone's GPS, in the same grid
REPORTED = "行道树倒伏 a fallen street tree (handheld)"  # the new report's description
# A road collapse ROADS handles, for the 核查: more than the class's 50 m from the front
# door test's road collapse (116.4015, 39.9201), which it was merged into.
CHECKED_AT = 116.4003
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "geolocation": HERE,
    "permissions": ["geolocation", "microphone"],
    "locale": "zh-CN",
    "timezone_id": "Asia/Shanghai",
}
MICROPHONE = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


async def _db(running: Running) -> tuple[AsyncMongoClient[Document], Any]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        running.system.env["MONGODB_URI"], tz_aware=True
    )
    return client, client[running.system.env["GRIDLOOP_MONGODB_DATABASE"]]


async def _handled_case(running: Running) -> str:
    """A road collapse in SUP-0001's grid, dispatched to ROADS and reported handled."""
    case_id = await dispatched_case(running, lon=CHECKED_AT)
    token = await running.token(Role.department, "ROADS")
    async with httpx.AsyncClient(base_url=running.system.url("dispatch")) as dispatch:
        done = await dispatch.post(
            f"/departments/ROADS/cases/{case_id}/handled",
            json={"handler_id": "crew-7", "note": "回填完毕"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert done.status_code == 202, done.text
    async with await intake_client(running) as intake:
        await case_in_state(intake, case_id, "handled")
    return case_id


async def _with_step(intake: httpx.AsyncClient, case_id: str, step: str) -> dict[str, Any]:
    """The case once its timeline has `step`, whatever came after it."""

    async def probe() -> dict[str, Any] | None:
        found = await intake.get(f"/cases/{case_id}")
        doc: dict[str, Any] = found.json() if found.status_code == 200 else {}
        return doc if any(e["type"] == step for e in doc.get("timeline", [])) else None

    return await eventually(probe, what=f"{case_id}: {step}")


async def phone_shot(page: Page, tmp: Path, name: str) -> None:
    """`shot` of the whole page on a screen as tall as it (the tabs, sticky at the
    screen's foot, then end the picture as they end the page), then the phone's again."""
    height = await page.evaluate("document.documentElement.scrollHeight")
    await page.set_viewport_size({"width": 390, "height": max(844, height)})
    await shot(page, tmp, name)
    await page.set_viewport_size(PHONE["viewport"])


async def _waiting(page: Page, n: int) -> None:
    await expect(page.locator("#waiting")).to_have_text(str(n))


@pytest.mark.timeout(420)
async def test_a_supervisor_verifies_and_reports_offline_and_each_arrives_once(
    running: Running, console: str, tmp_path: Path
) -> None:
    client, db = await _db(running)
    username, subject, name = SUPERVISOR
    people = People(db)
    await people.people.delete_many({"_id": {"$in": [username, GRID_STAFF[0]]}})
    await people.add(username, PASSWORD, Role.supervisor, subject, name)
    await people.add(GRID_STAFF[0], PASSWORD, Role.grid_staff, GRID_STAFF[1], GRID_STAFF[2])
    async with httpx.AsyncClient(base_url=running.system.url("intake")) as citizen:
        sent = await citizen.post("/reports", json=CITIZEN)
    assert sent.status_code == 202, sent.text
    to_verify = sent.json()["case_id"]
    intake = await intake_client(running)
    await case_in_state(intake, to_verify, "reported")
    to_check = await _handled_case(running)
    photo, check_photo = workbench_png(0x2E7D32), workbench_png(0x1565C0)

    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=QUIET + MICROPHONE)
        phone = await browser.new_context(**PHONE)
        page = await phone.new_page()
        await sign_in(page, console, username)
        await expect(page).to_have_url(f"{console}/m/")  # the handheld is a supervisor's home
        # The service worker holds the shell before the network goes.
        assert await page.evaluate("navigator.serviceWorker.ready.then(r => !!r.active)")
        verify = page.locator(f"#tasks-verification article[data-case='{to_verify}']")
        check = page.locator(f"#tasks-check article[data-case='{to_check}']")
        await expect(verify.locator(".light")).to_have_text("未超时")
        await expect(verify.locator(".due")).not_to_have_text("—")
        await expect(check).to_contain_text("ROADS")
        await phone_shot(page, tmp_path, "handheld-tasks")

        # Offline: the verification with a photo, kept on the phone.
        await phone.set_offline(True)
        await expect(page.locator("#net")).to_contain_text("离线")
        await verify.locator("summary").click()
        await verify.get_by_label("情况属实").check()
        await verify.get_by_label("说明").fill("现场确认 confirmed on site")
        await verify.get_by_label("现场照片").set_input_files(
            {"name": "site.png", "mimeType": "image/png", "buffer": photo}
        )
        await expect(verify.locator(".previews img")).to_have_count(1)
        await phone_shot(page, tmp_path, "handheld-verify")
        await verify.get_by_role("button", name="提交核实").click()
        await expect(verify.locator(".pending")).to_be_visible()
        await _waiting(page, 1)
        await phone_shot(page, tmp_path, "handheld-offline")

        # Offline still: the report page comes from the service worker's cache; the GPS
        # point is the phone's (editable), a photo and a recorded voice note go with it.
        await page.goto(f"{console}/m/report")
        await expect(page.get_by_label("经度")).to_have_value("116.401600")
        await expect(page.get_by_label("纬度")).to_have_value("39.920700")
        await page.get_by_label("问题类别").select_option("component:0402")
        await page.get_by_label("问题描述").fill(REPORTED)
        await page.get_by_label("照片").set_input_files(
            {"name": "tree.png", "mimeType": "image/png", "buffer": photo}
        )
        await page.get_by_role("button", name="录音").click()
        await page.wait_for_timeout(1200)  # a second of the fake microphone's tone
        await page.get_by_role("button", name="停止").click()
        await expect(page.locator(".recorded")).to_contain_text("已录音")
        await phone_shot(page, tmp_path, "handheld-report")
        await page.get_by_role("button", name="上报", exact=True).click()
        await expect(page.locator("#saved")).to_contain_text("已保存在本机")
        await _waiting(page, 2)

        await page.goto(f"{console}/m/outbox")
        await expect(page.locator("#outbox li")).to_have_count(2)
        await phone_shot(page, tmp_path, "handheld-outbox")
        # A copy of what waits, to send it all again once it has arrived.
        await page.evaluate("gridloopOutbox.all().then(all => { window.kept = all; })")

        # Online: the report's answer is lost on its way back (intake took it): the phone
        # keeps it and sends it again under the same key.
        lost: list[str] = []

        async def lose_first_answer(route: Route) -> None:
            if lost:
                await route.continue_()
                return
            answered = await route.fetch()
            assert answered.status == 202, await answered.text()
            lost.append((await answered.json())["case_id"])
            await route.abort("connectionreset")

        await page.route("**/m/api/reports", lose_first_answer)
        await phone.set_offline(False)
        await expect(page.locator("#outbox li[data-kind='report']")).to_have_count(1)
        await expect(page.locator("#outbox li[data-kind='verification']")).to_have_count(0)
        assert lost, "the report was sent and its answer lost"
        await page.get_by_role("button", name="立即发送").click()
        await expect(page.locator("#outbox li[data-kind]")).to_have_count(0)
        await expect(page.locator("#sent li")).to_have_count(2)
        await phone_shot(page, tmp_path, "handheld-sent")

        # Sent twice over: the whole outbox again, photos uploaded anew.
        answers = await page.evaluate(
            """async () => {
                await Promise.all(window.kept.map(e => gridloopOutbox.put(e)));
                const how = await gridloopOutbox.flush();
                return { how, left: (await gridloopOutbox.all()).length };
            }"""
        )
        assert answers == {"how": "sent", "left": 0}
        sent_again = await page.evaluate("gridloopOutbox.sent()")
        assert {s["case_id"] for s in sent_again if s["kind"] == "report"} == {lost[0]}

        # Each arrived once: one verification with its photo, one new case.
        verified = await _with_step(intake, to_verify, "case.verified")
        steps = [e for e in verified["timeline"] if e["type"] == "case.verified"]
        assert len(steps) == 1 and len(steps[0]["data"]["media"]) == 1
        assert steps[0]["actor"]["id"] == subject
        new = await _with_step(intake, lost[0], "case.filed")
        assert await db["cases"].count_documents({"description": REPORTED}) == 1
        assert new["channel"] == "supervisor" and new["reporter"]["id"] == subject
        assert new["point"]["coordinates"] == [HERE["longitude"], HERE["latitude"]]
        kinds = [(await intake.get(f"/media/{m}")).headers["content-type"] for m in new["media"]]
        assert kinds[0] == "image/png" and kinds[1].startswith("audio/")
        digest = hashlib.sha256(photo).hexdigest()
        uploads = {"metadata.sha256": digest, "metadata.uploaded_by.subject": subject}
        assert await db["media.files"].count_documents(uploads) == 1  # sent three times

        # The 核查 with a photo, made offline too: sent when the network returns, it
        # closes the handled case.
        await page.goto(f"{console}/m/")
        await phone.set_offline(True)
        await check.locator("summary").click()
        await check.get_by_label("处置合格，结案").check()
        await check.get_by_label("现场照片").set_input_files(
            {"name": "after.png", "mimeType": "image/png", "buffer": check_photo}
        )
        await check.get_by_role("button", name="提交核查").click()
        await expect(check.locator(".pending")).to_be_visible()
        await _waiting(page, 1)
        await phone.set_offline(False)
        closed = await case_in_state(intake, to_check, "closed", ["case.checked"])
        [checked] = [e for e in closed["timeline"] if e["type"] == "case.checked"]
        assert checked["data"]["passed"] is True and len(checked["data"]["media"]) == 1
        await _waiting(page, 0)

        # A grid manager has the handheld too: no 核实 or 核查 of theirs, no 上报; their
        # field tabs (self-handling, visits, patrol: test_handheld_visit_dispute.py).
        staff = await browser.new_context(**PHONE)
        other = await staff.new_page()
        await sign_in(other, console, GRID_STAFF[0])
        await expect(other).to_have_url(f"{console}/m/")
        await expect(other.locator("nav.tabs [aria-disabled=true]")).to_have_count(0)
        for tab in ("自处置", "走访", "巡查"):
            await expect(other.locator("nav.tabs").get_by_role("link", name=tab)).to_be_visible()
        await expect(other.get_by_role("link", name="上报")).to_have_count(0)
        await phone_shot(other, tmp_path, "handheld-grid-staff")
        await browser.close()
    await intake.aclose()
    await client.close()


def workbench_png(rgb: int) -> bytes:
    """A phone photo: a small PNG of one colour, taller than wide."""
    return png(rgb, 60, 80)
