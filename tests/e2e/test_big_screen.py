"""The big screen in headless Chromium: the evaluation app against the session's database,
with a simulated month projected and scored; the page loads, fetches its data and shows the
real figures. The screenshot is kept in the test's directory, and copied to
docs/img/big-screen.png when GRIDLOOP_UPDATE_SCREENSHOT=1 (so a test run leaves the
checkout as it was)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench.report_month import Month, load
from gridloop.auth import CredentialStore
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.embedded import free_port
from gridloop.lifecycle import OPEN_STATES
from gridloop.mongo import Document
from gridloop.scoring import Level
from schemas import clock
from services.evaluation.api import create_app
from services.evaluation.report.model import Period
from services.evaluation.store import ScoreStore
from tests.conftest import Servers
from tests.helpers import serving

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium (Debian's `chromium`) is absent; `make tools` installs it as root",
)
PACK = load_city_pack(DEMO_CITY_PACK)
SCREENSHOT = Path(__file__).parents[2] / "docs" / "img" / "big-screen.png"
QUIET = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=5000",  # the page's first fetch happens in virtual time
)


@dataclass
class Screen:
    url: str
    db: AsyncDatabase[Document]
    period: str


@pytest_asyncio.fixture(loop_scope="session")
async def screen(servers: Servers) -> AsyncIterator[Screen]:
    now = clock.now()
    month = now.astimezone(ZoneInfo(PACK.city.timezone)).strftime("%Y-%m")
    period = Period.parse(month, PACK.city.timezone)
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = client[f"e2e_{uuid.uuid4().hex[:8]}"]
    # This month so far: the screen shows the current month.
    await load(db, PACK, Month(PACK, period, now, seed=29).events(40))
    port = free_port()
    app = create_app(ScoreStore(db, PACK), CredentialStore(db))
    async with serving(app, port):
        yield Screen(f"http://127.0.0.1:{port}/screen", db, period.label)
    await client.drop_database(db.name)
    await client.close()


async def chromium(profile: Path, *args: str) -> str:
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *QUIET,
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


def shown(dom: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert found, f"no #{element_id} in the page"
    return found[1]


async def test_the_big_screen_shows_the_live_figures_and_is_photographed(
    screen: Screen, tmp_path: Path
) -> None:
    dom = await chromium(tmp_path / "profile", "--dump-dom", screen.url)
    assert 'data-loaded="yes"' in dom, "the page never showed its data"
    cases = screen.db["cases"]
    open_cases = await cases.count_documents({"state": {"$in": [s.value for s in OPEN_STATES]}})
    assert shown(dom, "open-cases") == str(open_cases)
    lights = [int(shown(dom, f"light-{light}")) for light in ("green", "yellow", "red")]
    assert sum(lights) == open_cases
    assert shown(dom, "district") == PACK.city.district.name
    assert shown(dom, "period") == screen.period
    league = await ScoreStore(screen.db, PACK).league(Level.department, screen.period)
    assert league, "nothing scored this month"
    assert f"{league[0].name} ({league[0].entity})" in dom  # the leader, by name and code
    picture = tmp_path / "big-screen.png"
    await chromium(
        tmp_path / "profile", f"--screenshot={picture}", "--window-size=1920,1080", screen.url
    )
    assert picture.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("GRIDLOOP_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(picture, SCREENSHOT)
