"""Answering directly (直接答复) at the intake operator's desk, in a real browser on the whole
system (the fixtures and helpers of `test_workbench.py`): a resident asks on the website
when the heating starts; the operator liu.yang searches the knowledge base on the case page
(this season's entry first, last season's never offered), answers with it, and the case is
closed `answered`, never filed or dispatched. Both screens are checked with axe-core and
photographed (`shot`: docs/img/console-intake-knowledge.png, console-intake-answered.png).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e import test_workbench as workbench
from tests.e2e.conftest import Running
from tests.e2e.test_closed_loop import case_in_state, intake_client
from tests.e2e.test_workbench import CHROMIUM, QUIET, shot, sign_in

console = workbench.console  # the fixture: the console on the running system, its people
pytestmark = workbench.pytestmark  # Debian's Chromium, or skipped

# A litter bin (垃圾箱) class no other test reports, where no other test reports: a
# consultation is a report like any other until it is answered.
QUESTION = {
    "channel": "website",
    "kind": "component",
    "class_code": "0305",
    "point": {"lon": 116.4050, "lat": 39.9208},
    "description": "请问今年什么时候开始供暖？家里暖气还不热",
}


@pytest.mark.timeout(300)
async def test_the_intake_operator_answers_a_consultation_from_the_knowledge_base(
    running: Running, console: str, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=running.system.url("intake")) as citizen:
        sent = await citizen.post("/reports", json=QUESTION)
    assert sent.status_code == 202, sent.text
    case_id: str = sent.json()["case_id"]
    async with await intake_client(running) as intake:
        await case_in_state(intake, case_id, "reported")

    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await sign_in(page, console, "liu.yang")
        await page.goto(f"{console}/cases/{case_id}")
        await page.get_by_label("咨询问题").fill("今年什么时候开始供暖")
        await page.get_by_role("button", name="搜索知识库").click()

        entries = page.locator("#knowledge article")
        await expect(entries.first).to_have_attribute("data-entry", "heating-2026")
        await expect(entries.first).to_contain_text("2026年11月15日至2027年3月15日")
        await expect(page.locator("article[data-entry='heating-2025']")).to_have_count(0)
        await expect(page.get_by_label("咨询问题")).to_have_value("今年什么时候开始供暖")
        await shot(page, tmp_path, "intake-knowledge")

        await page.locator("#answer-heating-2026").get_by_role("button").click()
        await expect(page.locator("#done")).to_contain_text("直接答复")
        await expect(page.locator("#state")).to_contain_text("answered")
        await expect(page.locator("#timeline")).to_contain_text("case.answered")
        await expect(page.locator("#timeline")).to_contain_text("centre · liu.yang")  # who
        await expect(page.locator("#knowledge")).to_have_count(0)  # nothing more to answer
        await expect(page.locator("form.action")).to_have_count(0)  # nor to file or void
        await shot(page, tmp_path, "intake-answered")
        await browser.close()

    async with await intake_client(running) as intake:
        done = await case_in_state(intake, case_id, "answered")
    steps = [e["type"] for e in done["timeline"]]
    assert steps == ["case.reported", "case.answered"]  # never filed, never dispatched
