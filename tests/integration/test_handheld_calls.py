"""The handheld's device calls at the console's edge (`/m/api/…`), on the real database:
who may call, with the session's CSRF token and a key of the device's own; every refusal
in JSON (the outbox reads it), never a page; intake not answering is a 503 the device
sends again. And what makes it installable: the manifest, its icons, the service worker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.access import Role
from gridloop.audit import AuditTrail
from gridloop.cases.reader import CaseReader
from gridloop.mongo import Document
from gridloop.people import People
from services.console.app import SESSION, Console, create_app
from services.console.live import Live
from services.console.throttle import Throttle
from tests.conftest import Servers

PASSWORD = "out-in-the-street"
KEY = str(uuid.uuid4())
REPORT = {"kind": "event", "class_code": "0101", "description": "私搭乱建"}
PEOPLE = {
    "sun.hao": (Role.supervisor, "SUP-0001"),
    "he.ping": (Role.grid_staff, "GS-0001"),
    "zhou.qi": (Role.department, "ROADS"),
}


@pytest.fixture
async def console(servers: Servers) -> AsyncIterator[tuple[httpx.AsyncClient, People]]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db: AsyncDatabase[Document] = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    people, reader = People(db), CaseReader(db)
    for username, (role, subject) in PEOPLE.items():
        await people.add(username, PASSWORD, role, subject, username)
    # Intake at an address nobody answers: what the device sends meets no service.
    console = Console(
        people, reader, AuditTrail(db), "http://127.0.0.1:1", Throttle(), Live(reader)
    )
    console.intake_url = console.grid_url = "http://127.0.0.1:1"
    transport = httpx.ASGITransport(app=create_app(console))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        yield http, people
    await mongo.close()


async def signed_in(people: People, username: str) -> tuple[dict[str, str], str]:
    """The cookie of `username`'s session, and its CSRF token."""
    found = await people.sign_in(username, PASSWORD)
    assert found is not None
    return {"Cookie": f"{SESSION}={found.token}"}, found.csrf


async def test_the_devices_calls_need_the_session_its_token_and_a_key(
    console: tuple[httpx.AsyncClient, People],
) -> None:
    http, people = console
    cookie, csrf = await signed_in(people, "sun.hao")
    me = await http.get("/m/api/me", headers=cookie)
    assert me.json() == {"role": "supervisor", "subject": "SUP-0001", "name": "sun.hao"} | {
        "csrf": csrf
    }

    def send(headers: dict[str, str]) -> httpx.Request:
        return http.build_request("POST", "/m/api/reports", json=REPORT, headers=headers)

    no_token = await http.send(send(cookie | {"Idempotency-Key": KEY}))
    assert no_token.status_code == 422
    assert no_token.json()["detail"][0]["loc"] == ["header", "X-CSRF-Token"]
    stale = await http.send(send(cookie | {"Idempotency-Key": KEY, "X-CSRF-Token": "old"}))
    assert stale.status_code == 401 and stale.json()["detail"][0]["loc"] == ["session"]
    short_key = await http.send(send(cookie | {"Idempotency-Key": "1", "X-CSRF-Token": csrf}))
    assert short_key.status_code == 422
    assert short_key.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    # All in order, and intake does not answer: 503, the device keeps it and tries again.
    unanswered = await http.send(send(cookie | {"Idempotency-Key": KEY, "X-CSRF-Token": csrf}))
    assert unanswered.status_code == 503 and unanswered.json()["detail"][0]["loc"] == ["intake"]
    verify = await http.post(
        "/m/api/cases/C-1/verification",
        json={"confirmed": True},
        headers=cookie | {"Idempotency-Key": KEY, "X-CSRF-Token": csrf},
    )
    assert verify.status_code == 503
    unknown = await http.post(
        "/m/api/cases/C-1/void",
        json={},
        headers=cookie | {"Idempotency-Key": KEY, "X-CSRF-Token": csrf},
    )
    assert unknown.status_code == 404  # the handheld verifies and checks, nothing else


async def test_the_field_tabs_calls_refuse_bad_input_and_say_which_service_did_not_answer(
    console: tuple[httpx.AsyncClient, People],
) -> None:
    """走访, 巡查, 自处置: the same session, token and key; a grid that is no grid code is
    refused at the console (422 on `grid`); the grid service or intake not answering is a
    503 naming it (the device sends it again); a department is kept out."""
    http, people = console
    cookie, csrf = await signed_in(people, "he.ping")
    headers = cookie | {"Idempotency-Key": KEY, "X-CSRF-Token": csrf}
    visit = {"grid": "110101001001001", "at": "2026-12-06T10:00:00+08:00", "households": ["h"]}
    calls = [
        ("/m/api/visits", visit, "grid"),
        ("/m/api/visits/v-1/findings/0/case", {"kind": "dispute"}, "grid"),
        ("/m/api/patrols", {"grid": "110101001001001", "point": {"lon": 1, "lat": 2}}, "grid"),
        ("/m/api/patrols/p-1/track", {"seq": 0, "points": []}, "grid"),
        ("/m/api/patrols/p-1/end", {"point": {"lon": 1, "lat": 2}}, "grid"),
        ("/m/api/self-handling", {"kind": "event", "class_code": "0102"}, "intake"),
    ]
    for path, body, service in calls:
        answer = await http.post(path, json=body, headers=headers)
        assert answer.status_code == 503, path
        assert answer.json()["detail"][0]["loc"] == [service], path
    for path in ("/m/api/visits", "/m/api/patrols"):
        bad = await http.post(path, json={"grid": "../staff"}, headers=headers)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["grid"], path
    step = await http.post("/m/api/patrols/p-1/pause", json={}, headers=headers)
    assert step.status_code == 404
    finding = await http.post("/m/api/visits/v-1/findings/20/case", json={}, headers=headers)
    assert finding.status_code == 422  # a visit has 20 findings at most
    no_key = await http.post("/m/api/visits", json=visit, headers=cookie | {"X-CSRF-Token": csrf})
    assert no_key.status_code == 422
    assert no_key.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    d_cookie, d_csrf = await signed_in(people, "zhou.qi")
    kept_out = await http.post(
        "/m/api/patrols",
        json={"grid": "110101001001001"},
        headers=d_cookie | {"Idempotency-Key": KEY, "X-CSRF-Token": d_csrf},
    )
    assert kept_out.status_code == 403


async def test_the_handheld_is_for_supervisors_and_grid_staff(
    console: tuple[httpx.AsyncClient, People],
) -> None:
    http, people = console
    signed_out = await http.get("/m/api/me")
    assert signed_out.status_code == 401 and signed_out.json()["detail"][0]["loc"] == ["session"]
    page = await http.get("/m/")
    assert page.status_code == 303 and page.headers["location"] == "/login"

    cookie, csrf = await signed_in(people, "zhou.qi")  # a department's desk is elsewhere
    assert (await http.get("/m/", headers=cookie)).headers["location"] == "/"
    headers = cookie | {"Idempotency-Key": KEY, "X-CSRF-Token": csrf}
    refused = await http.post("/m/api/reports", json=REPORT, headers=headers)
    assert refused.status_code == 403 and refused.json()["detail"][0]["loc"] == ["role"]

    cookie, csrf = await signed_in(people, "he.ping")  # grid staff: no report channel yet
    home = await http.get("/", headers=cookie)
    assert home.status_code == 303 and home.headers["location"] == "/m/"
    assert (await http.get("/m/", headers=cookie)).status_code == 200
    headers = cookie | {"Idempotency-Key": KEY, "X-CSRF-Token": csrf}
    refused = await http.post("/m/api/reports", json=REPORT, headers=headers)
    assert refused.status_code == 403 and refused.json()["detail"][0]["loc"] == ["channel"]


async def test_it_installs_from_our_own_files(console: tuple[httpx.AsyncClient, People]) -> None:
    http, _ = console
    manifest = (await http.get("/m/manifest.webmanifest")).json()
    assert (manifest["start_url"], manifest["scope"], manifest["display"]) == (
        "/m/",
        "/m/",
        "standalone",
    )
    for icon in manifest["icons"]:
        assert icon["src"].startswith("/static/m/")  # ours: no CDN
        got = await http.get(icon["src"])
        assert got.status_code == 200 and got.content.startswith(b"\x89PNG")
    worker = await http.get("/m/sw.js")
    assert worker.headers["content-type"].startswith("text/javascript")
    assert "@VERSION@" not in worker.text and "gridloop-handheld-" in worker.text
    for path in ("/static/m/handheld.js", "/static/m/outbox.js", "/static/m/handheld.css"):
        assert (await http.get(path)).status_code == 200
