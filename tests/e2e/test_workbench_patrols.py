"""The shift lead sees who patrols where now, in a real browser: a grid manager clocks in
inside their grid and uploads two pieces of track (one twice) through the grid service's
API; the shift lead's workbench lists the patrol with its last position and its count of
points, from the grid service, under the lead's own session; once clocked out, the patrol
is among those ended in the last three days."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import async_playwright, expect
from pymongo import AsyncMongoClient

from gridloop.access import Role
from gridloop.audit import AuditTrail
from gridloop.auth import CredentialStore
from gridloop.cases.reader import CaseReader
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.embedded import free_port
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.mongo import Document
from gridloop.people import People
from services.console.app import Console, create_app
from services.console.live import Live
from services.console.throttle import Throttle
from services.grid.api import create_app as grid_app
from services.grid.patrolling import Patrols
from services.grid.patrols import PatrolStore
from services.grid.service import GridService
from services.grid.store import GridStore
from tests.conftest import Servers, fresh_namespace
from tests.e2e.test_workbench import CHROMIUM, PASSWORD, QUIET, shot, sign_in
from tests.helpers import serving
from tests.integration.grid_world import G1, IN_G1, ROOMY

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium (Debian's `chromium`) is absent; `make tools` installs it as root",
)


@pytest_asyncio.fixture(loop_scope="session")
async def patrolling(servers: Servers) -> AsyncIterator[tuple[str, str, CredentialStore]]:
    """A grid service and a console on one fresh database; chen.jie (shift lead) may sign
    in. Their addresses, and the credentials to issue tokens with."""
    namespace = fresh_namespace("patrols")
    await ensure_topics(servers.kafka, namespace=namespace)
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = client[f"test_{uuid.uuid4().hex[:12]}"]
    producer = EventProducer(servers.kafka, "patrols-test", namespace)
    await producer.start()
    pack = load_city_pack(DEMO_CITY_PACK)
    store, patrols = GridStore(db), PatrolStore(db)
    await store.seed(pack)
    service = GridService(pack, store, producer)
    credentials = CredentialStore(db)
    parts = {"patrols": Patrols(service, patrols)}
    people = People(db)
    await people.add("chen.jie", PASSWORD, Role.shift_lead, "lead", "陈杰")
    reader = CaseReader(db)
    console = Console(
        people, reader, AuditTrail(db), "http://127.0.0.1:9", Throttle(), Live(reader)
    )
    grid_port, console_port = free_port(), free_port()
    console.pack, console.grid_url = pack, f"http://127.0.0.1:{grid_port}"
    async with (
        serving(grid_app(service, credentials, ROOMY, parts=parts), grid_port),
        serving(create_app(console), console_port),
    ):
        yield console.grid_url, f"http://127.0.0.1:{console_port}", credentials
    await producer.stop()
    await client.close()


async def test_the_shift_lead_sees_who_patrols_where(
    patrolling: tuple[str, str, CredentialStore], tmp_path: Path
) -> None:
    grid, console, credentials = patrolling
    token = await credentials.issue(Role.grid_staff, "GM-0001")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=grid, headers=headers) as api:
        started = await api.post(f"/grids/{G1}/patrols", json={"point": IN_G1})
        assert started.status_code == 201, started.text
        patrol = started.json()["patrol"]
        at = datetime.now(UTC).replace(microsecond=0)
        first = {"seq": 0, "points": [IN_G1 | {"at": at.isoformat()}]}
        last = at + timedelta(minutes=2, seconds=30)  # a device clock a little ahead
        later = {
            "seq": 1,
            "points": [{"lon": 116.4008, "lat": 39.9206, "at": last.isoformat()}],
        }
        for piece in (first, first, later):  # the first piece sent twice: stored once
            assert (await api.post(f"/patrols/{patrol}/track", json=piece)).status_code < 300
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        lead = await browser.new_page(viewport={"width": 1280, "height": 800})
        await sign_in(lead, console, "chen.jie")
        await lead.get_by_role("link", name="巡查动态").click()
        await expect(lead.get_by_role("heading", name="巡查动态")).to_be_visible()
        row = lead.locator(f"#patrols tr[data-patrol='{patrol}']")
        await expect(row).to_contain_text("网格员 赵一")  # the register's name, and the id
        await expect(row).to_contain_text("GM-0001")
        await expect(row).to_contain_text("多福巷社区")
        await expect(row).to_contain_text(G1)
        await expect(row.locator(".points")).to_have_text("2")
        shown = last.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%m-%d %H:%M:%S")
        await expect(row.locator(".last")).to_contain_text(shown)  # in the city's time
        await expect(row.locator(".last")).to_contain_text("116.40080, 39.92060")
        await expect(row.locator(".outside")).to_have_text("0")
        # On the map of the community patrolled: its two grids, the patroller's last fix.
        drawing = lead.locator("#patrol-map")
        await expect(drawing.locator("path.grid")).to_have_count(2)
        await expect(drawing.locator(f"circle[data-patrol='{patrol}']")).to_have_count(1)
        await shot(lead, tmp_path, "patrols")

        # Clocked out: no longer on patrol, among those ended in the last three days.
        async with httpx.AsyncClient(base_url=grid, headers=headers) as api:
            ended = await api.post(f"/patrols/{patrol}/end", json={"point": IN_G1})
            assert ended.status_code == 200, ended.text
        await lead.reload()
        await expect(lead.locator(f"#patrols tr[data-patrol='{patrol}']")).to_have_count(0)
        await expect(lead.get_by_role("heading", name="近三天已结束 (1)")).to_be_visible()
        done = lead.locator(f"#ended tr[data-patrol='{patrol}']")
        await expect(done).to_contain_text("网格员 赵一")
        await expect(done.locator(".points")).to_have_text("2")
        off = datetime.fromisoformat(ended.json()["ended_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
        await expect(done.locator(".until")).to_have_text(off.strftime("%m-%d %H:%M"))
        await browser.close()
