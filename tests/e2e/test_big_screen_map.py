"""The big screen's map of open cases and its 30-day trend (issue 18) in a real Chromium,
driven by Playwright: the district's grids drawn, a dot for each cell with open cases, as
many cases as the database holds open; the trend's last day is today's reports and
closures. Checked with axe-core; the screenshot is kept in the test's directory and copied
to docs/img/big-screen-map.png when GRIDLOOP_UPDATE_SCREENSHOT=1."""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import async_playwright, expect

from bench.report_month import Month, load
from gridloop.lifecycle import OPEN_STATES
from schemas import clock
from services.evaluation.report.model import Period
from tests.e2e.test_big_screen import PACK, Screen, screen
from tests.e2e.test_workbench import AXE, CHROMIUM, DOCS_IMG, QUIET

__all__ = ["screen"]  # the fixture: the evaluation app on a month of the demo city
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium (Debian's `chromium`) is absent; `make tools` installs it as root",
)


async def test_the_big_screen_maps_open_cases_and_draws_the_last_30_days(
    screen: Screen, tmp_path: Path
) -> None:
    zone = ZoneInfo(PACK.city.timezone)
    now = clock.now()
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    # Besides the month so far, a dozen cases reported today: some are surely still open.
    await load(screen.db, PACK, Month(PACK, Period("today", today, now), now, seed=6).events(12))
    cases = screen.db["cases"]
    open_cases = await cases.count_documents({"state": {"$in": [s.value for s in OPEN_STATES]}})
    since = today - timedelta(days=29)
    reported_30 = await cases.count_documents({"reported_at": {"$gte": since}})
    reported_today = await cases.count_documents({"reported_at": {"$gte": today}})
    closed_today = await cases.count_documents({"closed_at": {"$gte": today}})
    assert open_cases > 0, "the month left no case open: nothing to map"

    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        page = await browser.new_page(viewport={"width": 1920, "height": 1080})
        await page.goto(screen.url)
        await expect(page.locator("body")).to_have_attribute("data-loaded", "yes")

        # The map: every grid of the pack, a dot a cell, the open cases all counted.
        map_ = page.get_by_role("img", name=re.compile("open cases on the map"))
        await expect(map_).to_be_visible()
        assert await page.locator("#grids path").count() == len(PACK.grids)
        dots = page.locator("#spots circle")
        await expect(dots.first).to_be_visible()
        tips = await page.locator("#spots circle title").all_text_contents()
        assert sum(int(t.split()[0]) for t in tips) == open_cases
        assert set(await dots.evaluate_all("ds => ds.map(d => d.getAttribute('class'))")) <= {
            "green",
            "yellow",
            "red",
        }

        # The trend: 30 points a line, today's figures beside it.
        trend = page.get_by_role("img", name=re.compile("the last 30 days"))
        await expect(trend).to_be_visible()
        for series in ("reported", "closed"):
            points = await page.locator(f"#trend .{series}").get_attribute("points")
            assert points is not None and len(points.split()) == 30
        await expect(page.locator("#trend-today-reported")).to_have_text(str(reported_today))
        await expect(page.locator("#trend-today-closed")).to_have_text(str(closed_today))
        await expect(page.locator("#trend-last")).to_have_text(today.strftime("%m-%d"))
        top = int(await page.locator("#trend-top").text_content() or "0")
        assert top >= 1 and reported_30 >= top

        found = await AXE.run(page)
        grave = [v for v in found.response["violations"] if v["impact"] in ("serious", "critical")]
        assert not grave, "; ".join(
            f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in grave
        )
        picture = tmp_path / "big-screen-map.png"
        await page.screenshot(path=picture, full_page=True)
        await browser.close()
    if os.environ.get("GRIDLOOP_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(picture, DOCS_IMG / "big-screen-map.png")
