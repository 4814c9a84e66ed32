"""A grid manager's visit becomes a dispute, which goes up to the community and is closed
there, in real browsers on the whole system (the grid service too): the grid manager
(staff.yaml: GM-0003 works grid 110101001002001), on a phone-sized Chromium, picks two
households of their grid on the handheld's 走访 tab and logs a visit whose finding — a
quarrel between neighbours — they make a dispute in the same action, with the network gone
(the visit waits in the phone's outbox) and then back (sent once). The grid's limit passes
(a compressed clock: this test's pack gives the grid tier three seconds of natural time, as
tests/integration/test_disputes.py does), the SLA engine's breach takes the dispute up to
the community; the community office (Role.tier_office, subject 001002), at a desktop,
records both parties' confirmation (验收) on the console's /disputes desk and closes it.
The case's timeline: one dispute, escalated once (by the breach), closed with confirmation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml
from playwright.async_api import Route, async_playwright, expect
from pymongo import AsyncMongoClient

from gridloop.access import Role
from gridloop.audit import AuditTrail
from gridloop.auth import CredentialStore
from gridloop.cases.reader import CaseReader
from gridloop.embedded import free_port
from gridloop.kafka.tail import tail
from gridloop.mongo import Document
from gridloop.people import People
from services.console.app import Console, create_app
from services.console.live import Live
from services.console.throttle import Throttle
from system.up import System
from tests.conftest import Servers
from tests.e2e.conftest import Receiver, system_env, write_pack
from tests.e2e.test_handheld import PHONE, phone_shot
from tests.e2e.test_workbench import CHROMIUM, PASSWORD, QUIET, shot, sign_in
from tests.e2e.test_workbench_desks import png
from tests.helpers import eventually, serving

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium (Debian's `chromium`) is absent; `make tools` installs it as root",
)
GRID, COMMUNITY = "110101001002001", "001002"
HERE = {"longitude": 116.4025, "latitude": 39.92045}  # the phone's GPS, inside GRID
# The grid has three seconds; every tier above it a day (the test closes it long before).
FAST_LADDER = {
    "clock": "natural",
    "types": {"0101": "邻里纠纷 neighbours", "0103": "物业纠纷 property management"},
    "tiers": [
        {"tier": "grid", "limit": "PT3S"},
        {"tier": "community", "limit": "P1D"},
        {"tier": "street", "limit": "P1D"},
        {"tier": "district", "limit": "P1D"},
    ],
}
PEOPLE = {
    "sun.san": (Role.grid_staff, "GM-0003", "孙三"),  # the grid's manager (staff.yaml)
    "zhao.hui": (Role.tier_office, COMMUNITY, "赵慧"),  # 智德社区 mediation office
}
QUARREL = "楼上漏水，两户争执 water from upstairs; the two households quarrel"


@pytest.fixture(scope="module")
def system(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The services the dispute passes through, the grid service among them, on a pack
    whose grid tier has three seconds."""
    root = tmp_path_factory.mktemp("disputes-system")
    pack_dir = write_pack(root / "citypack", Receiver(free_port()).port)
    sla: dict[str, Any] = yaml.safe_load((pack_dir / "sla.yaml").read_text(encoding="utf-8"))
    sla["disputes"] = FAST_LADDER
    (pack_dir / "sla.yaml").write_text(yaml.safe_dump(sla, allow_unicode=True), "utf-8")
    env = system_env(servers, root, pack_dir)
    running = System(env, root / "logs", ("projections", "dispatch", "sla", "intake", "grid"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def console(system: System) -> AsyncIterator[tuple[str, Any, str]]:
    """The console on that system (intake, dispatch and the grid service); the grid manager
    and the community office may sign in. Its address, the system's database, the grid
    service's address."""
    from gridloop.citypack import load_city_pack

    client: AsyncMongoClient[Document] = AsyncMongoClient(system.env["MONGODB_URI"], tz_aware=True)
    db = client[system.env["GRIDLOOP_MONGODB_DATABASE"]]
    people = People(db)
    await people.people.delete_many({"_id": {"$in": list(PEOPLE)}})
    for username, (role, subject, name) in PEOPLE.items():
        await people.add(username, PASSWORD, role, subject, name)
    reader = CaseReader(db)
    live = Live(reader)
    desk = Console(people, reader, AuditTrail(db), system.url("dispatch"), Throttle(), live)
    desk.intake_url, desk.grid_url = system.url("intake"), system.url("grid")
    desk.pack = load_city_pack(Path(system.env["GRIDLOOP_CITY_PACK"]))
    stop = asyncio.Event()
    kafka, namespace = system.env["KAFKA_BOOTSTRAP_SERVERS"], system.env["GRIDLOOP_NAMESPACE"]
    following = asyncio.create_task(tail(kafka, live.on_events, stop, namespace))
    port = free_port()
    async with serving(create_app(desk), port):
        yield f"http://127.0.0.1:{port}", db, desk.grid_url
    stop.set()
    await following
    await client.close()


async def _case(db: Any, case_id: str, tier: str, state: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        found = await CaseReader(db).record(case_id)
        doc = found.model_dump() if found is not None else {}
        return doc if (doc.get("tier"), doc.get("state")) == (tier, state) else None

    return await eventually(probe, 60.0, f"{case_id} held by {tier}, {state}")


@pytest.mark.timeout(420)
async def test_a_visits_finding_becomes_a_dispute_that_goes_up_and_is_closed_with_confirmation(
    console: tuple[str, Any, str], tmp_path: Path
) -> None:
    url, db, _ = console
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        phone = await browser.new_context(**(PHONE | {"geolocation": HERE}))
        hand = await phone.new_page()

        # The grid manager lands on the handheld; the visits tab lists their grid's doors.
        await sign_in(hand, url, "sun.san")
        await expect(hand).to_have_url(url + "/m/")
        await hand.get_by_role("link", name="走访").click()
        await expect(hand.get_by_role("heading", name="走访", exact=True)).to_be_visible()
        doors = hand.locator(f"fieldset[data-grid='{GRID}'] input[name=household]")
        await expect(doors.first).to_be_visible()
        assert await doors.count() >= 2
        await expect(hand.locator("#lon")).to_have_value("116.402500")  # the phone's GPS
        await phone_shot(hand, tmp_path, "handheld-visits")

        # No door picked: said beside the button, nothing kept.
        await hand.get_by_role("button", name="保存走访").click()
        await expect(hand.locator("#visit-error")).to_be_visible()
        await doors.nth(0).check()
        await doors.nth(1).check()
        finding = hand.locator("fieldset.finding[data-index='0']")
        await finding.get_by_label("类型").select_option("dispute")
        await finding.get_by_label("居民反映").fill(QUARREL)
        await finding.get_by_label("转为案件或矛盾纠纷").select_option("dispute:0101")

        # Offline: the visit waits on the phone; online again, it is sent once.
        await phone.set_offline(True)
        await hand.get_by_role("button", name="保存走访").click()
        await expect(hand.locator("#waiting")).to_have_text("1")
        await expect(hand.locator("#net-state")).to_contain_text("离线")
        await phone.set_offline(False)
        await expect(hand.locator("#waiting")).to_have_text("0", timeout=30_000)
        await hand.reload()
        made = hand.locator("#recent .case")
        await expect(made).to_have_count(1)
        await expect(made).to_contain_text("矛盾纠纷")
        case_id = await made.get_attribute("data-case")
        assert case_id
        await phone_shot(hand, tmp_path, "handheld-visit-dispute")

        # The grid's three seconds pass: the dispute goes up to the community.
        await _case(db, case_id, "community", "mediating")

        # The community office closes it with both parties' confirmation.
        office = await browser.new_page(viewport={"width": 1280, "height": 900})
        await sign_in(office, url, "zhao.hui")
        await office.goto(url + "/disputes")
        row = office.locator(f"#queue-held tr[data-case='{case_id}']")
        await expect(row).to_contain_text("社区")
        await row.get_by_label("申请人", exact=True).check()
        await row.get_by_label("被申请人", exact=True).check()
        await row.get_by_role("button", name="记录验收").click()
        await expect(office.locator("#done")).to_contain_text("已记录验收")
        await expect(row.locator(".confirmed")).to_have_text("已确认: 申请人、被申请人")
        await shot(office, tmp_path, "disputes-from-visit")
        await row.get_by_label("结案说明").fill("物业维修后双方和解 repaired; the parties agreed")
        await row.get_by_role("button", name="结案").click()
        await expect(office.locator("#done")).to_contain_text("已结案")
        await expect(row).to_have_count(0)
        # Among what the tier closed (已调结): the parties confirmed.
        done = office.locator(f"#queue-closed tr[data-case='{case_id}']")
        await expect(done.locator(".confirmed")).to_have_text("已确认")
        await shot(office, tmp_path, "disputes-closed")
        await browser.close()

    case = await _case(db, case_id, "community", "closed")
    assert await db["cases"].count_documents({"kind": "dispute"}) == 1  # one dispute
    steps = [e["type"] for e in case["timeline"]]
    assert steps.count("case.reported") == 1
    [up] = [e for e in case["timeline"] if e["type"] == "case.dispute_escalated"]
    assert (up["data"]["cause"], up["actor"]["role"]) == ("breach", "system")
    assert steps.count("case.dispute_confirmed") == 1
    [closed] = [e for e in case["timeline"] if e["type"] == "case.dispute_closed"]
    assert closed["data"]["confirmed"] is True
    assert closed["actor"] == {"role": "tier_office", "id": COMMUNITY, "person": "zhao.hui"}
    reported = next(e for e in case["timeline"] if e["type"] == "case.reported")
    assert reported["actor"]["role"] == "grid_staff" and reported["actor"]["id"] == "GM-0003"


async def _case_of(db: Any, query: dict[str, Any]) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        found: dict[str, Any] | None = await db["cases"].find_one(query)
        return found

    try:
        return await eventually(probe, 60.0, f"a case {query}")
    except AssertionError as missed:  # what the projection holds instead, to say why
        near = {k: v for k, v in query.items() if k != "state"}
        held = [(d["_id"], d.get("state")) async for d in db["cases"].find(near)]
        raise AssertionError(f"{missed}; cases of {near} projected: {held}") from None


# The patrol's id the phone keeps once its clock-in is answered (outbox.js, `AFTER`).
PATROL_ID = (
    "Object.keys(localStorage).filter(k => k.startsWith('gridloop-patrol-id:'))"
    ".map(k => localStorage.getItem(k))[0]"
)


async def _dropped(route: Route) -> None:
    await route.abort("internetdisconnected")


@pytest.mark.timeout(420)
async def test_a_patrol_and_a_self_handling_from_the_handheld_arrive_once(
    console: tuple[str, Any, str], tmp_path: Path
) -> None:
    """The grid manager clocks in inside their grid, walks (the phone's position moves: the
    track), goes offline and clocks out (the last piece and the clock-out wait on the
    phone), comes back: the grid service has the patrol ended with its track. Then they fix
    exposed garbage on the spot with photos before and after; the network drops it, and it
    is sent from the outbox's tab: one case, self-handled."""
    url, db, grid_url = console
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        phone = await browser.new_context(**(PHONE | {"geolocation": HERE}))
        hand = await phone.new_page()
        await sign_in(hand, url, "sun.san")
        await expect(hand).to_have_url(url + "/m/")

        await hand.get_by_role("link", name="巡查").click()
        await expect(hand.get_by_label(f"网格 {GRID}")).to_be_checked()
        await expect(hand.locator("#lon")).to_have_value("116.402500")
        await hand.get_by_role("button", name="巡查签到").click()
        await expect(hand.locator("#on-patrol")).to_be_visible()
        await expect(hand.locator("#patrol-grid")).to_have_text(GRID)
        # Clocked in: its answer gave the phone the patrol's id (#waiting may read 0 before
        # the clock-in was even counted).
        await hand.wait_for_function(PATROL_ID, timeout=30_000)
        await expect(hand.locator("#waiting")).to_have_text("0")
        for lon, lat in ((116.4027, 39.9206), (116.4023, 39.9203)):  # walking
            await phone.set_geolocation({"longitude": lon, "latitude": lat})
            await hand.wait_for_timeout(300)
        await expect(hand.locator("#patrol-fixes")).not_to_have_text("0")
        await phone_shot(hand, tmp_path, "handheld-patrol")

        await phone.set_offline(True)
        await hand.get_by_role("button", name="巡查签退").click()
        await expect(hand.locator("#waiting")).to_have_text("2")  # the last piece, the end
        await expect(hand.locator("#off-patrol")).to_be_visible()
        await phone.set_offline(False)
        await expect(hand.locator("#waiting")).to_have_text("0", timeout=30_000)
        patrol = await hand.evaluate(PATROL_ID)
        assert patrol

        # 自处置: only the classes the pack allows; photos before and after.
        await hand.get_by_role("link", name="自处置").click()
        offered = await hand.locator("#class option").evaluate_all("o => o.map(x => x.value)")
        assert "event:0102" in offered and "event:0101" not in offered
        await hand.get_by_label("问题类别").select_option("event:0102")
        await hand.get_by_label("问题描述").fill("暴露垃圾 a heap of rubbish by the gate")
        await hand.get_by_label("处置前照片").set_input_files(
            {"name": "before.png", "mimeType": "image/png", "buffer": png(0x884422)}
        )
        await hand.get_by_label("处置后照片").set_input_files(
            {"name": "after.png", "mimeType": "image/png", "buffer": png(0x22AA44)}
        )
        await hand.get_by_label("处置说明").fill("已清理 cleared")
        await expect(hand.locator("#lon")).to_have_value("116.402300")  # where they walked to
        await phone_shot(hand, tmp_path, "handheld-selfhandling")
        # The network drops the call: kept on the phone, it waits…
        await hand.route("**/m/api/self-handling", _dropped)
        await hand.get_by_role("button", name="提交自处置").click()
        await expect(hand.locator("#saved")).to_contain_text("已保存在本机")
        await expect(hand.locator("#waiting")).to_have_text("1")
        await hand.unroute("**/m/api/self-handling")
        # …and goes from the 待发送 tab, not the one that kept it; its list of what was sent
        # says so.
        await hand.get_by_role("navigation").get_by_role("link", name="待发送").click()
        sent = hand.locator("#sent li", has_text="自处置")
        await expect(sent).to_contain_text("self_handled", timeout=30_000)
        await expect(hand.locator("#outbox li[data-kind]")).to_have_count(0)
        await phone_shot(hand, tmp_path, "handheld-selfhandling-sent")
        await browser.close()

    token = await CredentialStore(db).issue(Role.shift_lead, "lead")
    async with httpx.AsyncClient(base_url=grid_url) as grid:
        found = await grid.get(f"/patrols/{patrol}", headers={"Authorization": f"Bearer {token}"})
    assert found.status_code == 200, found.text
    walked = found.json()
    assert walked["open"] is False and walked["grid"] == GRID and walked["staff"] == "GM-0003"
    assert walked["points"] >= 1 and walked["outside"] == 0

    handled = await _case_of(db, {"class_code": "0102", "state": "self_handled"})
    assert await db["cases"].count_documents({"class_code": "0102"}) == 1  # one case
    record = await CaseReader(db).record(handled["_id"])
    assert record is not None
    steps = [e["type"] for e in record.model_dump()["timeline"]]
    assert steps.count("case.self_handled") == 1 and "case.dispatched" not in steps
