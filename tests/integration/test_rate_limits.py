"""The HTTP door (`gridloop/http.py`) on intake's real app: body sizes counted as they
stream, rate limits per client address for everyone but staff, proxies believed only when
trusted."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.auth import CredentialStore, Role
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK, Settings
from gridloop.embedded import free_port
from gridloop.http import HttpLimits, client_address
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.mongo import Document
from gridloop.people import People
from gridloop.runtime import serve
from services.intake.api import UPLOAD_BODY, Intake, create_app, follow_key
from tests.conftest import Servers
from tests.helpers import eventually
from tests.integration.test_intake_api import WEBSITE

MiB = 1024 * 1024
PUBLIC_READ = "/open311/v2/services.json"  # anyone may read it; it costs nothing


@dataclass
class Door:
    """Intake behind a door with `limits`; `client(address)` calls from that address."""

    client: Callable[..., httpx.AsyncClient]
    tokens: dict[Role, str]
    app: FastAPI
    db: AsyncDatabase[Document]

    def bearer(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


async def _door(servers: Servers, limits: HttpLimits) -> AsyncIterator[Door]:
    await ensure_topics(servers.kafka)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    producer = EventProducer(servers.kafka)
    await producer.start()
    intake = Intake(load_city_pack(DEMO_CITY_PACK), producer, db, await follow_key(db))
    credentials = CredentialStore(db)
    tokens = {r: await credentials.issue(r, f"{r}-1") for r in (Role.hotline, Role.public)}
    app = create_app(intake, limits)
    opened: list[httpx.AsyncClient] = []

    def client(address: str = "192.0.2.10", **headers: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        opened.append(httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers))
        return opened[-1]

    yield Door(client, tokens, app, db)
    for http in opened:
        await http.aclose()
    await producer.stop()
    await mongo.close()


@pytest.fixture
async def door(servers: Servers) -> AsyncIterator[Door]:
    async for found in _door(servers, HttpLimits(public_rate="3/minute")):
        yield found


@pytest.fixture
async def behind_proxy(servers: Servers) -> AsyncIterator[Door]:
    limits = HttpLimits(public_rate="2/minute", trusted_proxies="10.0.0.0/8")
    async for found in _door(servers, limits):
        yield found


def refused(response: httpx.Response, status: int, loc: list[str], kind: str) -> None:
    assert response.status_code == status, response.text
    [problem] = response.json()["detail"]
    assert (problem["loc"], problem["type"]) == (loc, kind)


# --- body size ------------------------------------------------------------------------------


async def test_a_body_declared_too_large_is_refused_before_it_is_read(door: Door) -> None:
    response = await door.client().post(
        "/reports", content=b"{" + b" " * (2 * MiB), headers={"content-type": "application/json"}
    )
    refused(response, 413, ["body"], "too_large")


async def test_a_streamed_body_without_length_is_cut_at_the_limit(door: Door) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):  # 40 × 64 KiB = 2.5 MiB, no Content-Length
            yield b" " * (64 * 1024)

    response = await door.client().post(
        "/reports", content=chunks(), headers={"content-type": "application/json"}
    )
    refused(response, 413, ["body"], "too_large")
    assert "content-length" not in response.request.headers


async def test_a_body_lying_about_its_length_is_cut_at_the_limit(door: Door) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * (64 * 1024)

    # It says 100 bytes and sends 2.5 MiB: the count, not the header, decides.
    headers = {"content-type": "application/json", "content-length": "100"}
    response = await door.client().post("/reports", content=chunks(), headers=headers)
    refused(response, 413, ["body"], "too_large")


async def test_media_uploads_have_their_larger_limit(door: Door) -> None:
    photo = b"\x89PNG\r\n\x1a\n" + b"\0" * (3 * MiB)  # over the 1 MiB of other routes
    http = door.client(**door.bearer(Role.hotline))
    stored = await http.post("/media", files={"file": ("p.png", photo, "image/png")})
    assert stored.status_code == 201, stored.text
    too_big = b"\x89PNG\r\n\x1a\n" + b"\0" * UPLOAD_BODY
    response = await http.post("/media", files={"file": ("p.png", too_big, "image/png")})
    refused(response, 413, ["body"], "too_large")


# --- rate limits ----------------------------------------------------------------------------


async def test_the_public_is_limited_per_address_with_retry_after(door: Door) -> None:
    http = door.client("192.0.2.10")
    for _ in range(3):
        assert (await http.get(PUBLIC_READ)).status_code == 200
    response = await http.get(PUBLIC_READ)
    refused(response, 429, ["client"], "rate_limited")
    assert 1 <= int(response.headers["retry-after"]) <= 60
    # Another address has a window of its own.
    assert (await door.client("192.0.2.11").get(PUBLIC_READ)).status_code == 200


async def test_a_refused_request_still_counts_and_so_does_a_made_up_token(door: Door) -> None:
    forged = door.client("192.0.2.20", Authorization="Bearer glk_made-up")
    for _ in range(3):
        assert (await forged.get("/cases/C-1")).status_code == 401
    assert (await forged.get("/cases/C-1")).status_code == 429


async def test_a_citizen_credential_is_limited_like_the_public(door: Door) -> None:
    http = door.client("192.0.2.30", **door.bearer(Role.public))
    statuses = [(await http.get(PUBLIC_READ)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_a_public_batch_counts_each_of_its_reports(door: Door) -> None:
    """One address may not file a window's worth of cases in every request: each report of
    an anonymous batch is a request (the window here: 3 a minute)."""
    http = door.client("192.0.2.60")
    four = await http.post("/reports/batch", json=[WEBSITE] * 4)
    refused(four, 429, ["client"], "rate_limited")
    assert 1 <= int(four.headers["retry-after"]) <= 60
    # Refused whole before anything was decided: the request itself counted, its reports
    # did not, and nothing was filed.
    assert await door.db["case_heads"].count_documents({}) == 0
    three = await http.post("/reports/batch", json=[WEBSITE] * 3)
    assert three.status_code == 429, three.text  # 1 (the four) + 3 > 3
    other = door.client("192.0.2.61")
    accepted = await other.post("/reports/batch", json=[WEBSITE] * 2)
    assert accepted.status_code == 202, accepted.text
    statuses = [(await other.get(PUBLIC_READ)).status_code for _ in range(2)]
    assert statuses == [200, 429]  # 2 (the batch) + 1 = 3


async def test_a_staff_batch_is_not_counted(door: Door) -> None:
    http = door.client("192.0.2.62", **door.bearer(Role.hotline))
    hotline = [WEBSITE | {"channel": "hotline"}] * 5
    response = await http.post("/reports/batch", json=hotline)
    assert response.status_code == 202, response.text


async def test_staff_are_not_limited(door: Door) -> None:
    http = door.client("192.0.2.40", **door.bearer(Role.hotline))
    statuses = {(await http.get(PUBLIC_READ)).status_code for _ in range(10)}
    assert statuses == {200}


async def test_staff_signed_in_are_not_limited(door: Door) -> None:
    """A person's session (the workbench's bearer token) is a staff credential to the door:
    every operator behind the console's one address must not share the public's window."""
    people = People(door.db)
    await people.add("wang.li", "a long passphrase", Role.hotline, "op-9")
    session = await people.sign_in("wang.li", "a long passphrase")
    assert session is not None
    http = door.client("192.0.2.45", Authorization=f"Bearer {session.token}")
    statuses = {(await http.get(PUBLIC_READ)).status_code for _ in range(10)}
    assert statuses == {200}
    # Signed out, the token is nobody's: limited as the public.
    await people.sign_out(session.token)
    statuses = {(await http.get(PUBLIC_READ)).status_code for _ in range(4)}
    assert 429 in statuses


async def test_health_and_metrics_are_not_limited(door: Door) -> None:
    http = door.client("192.0.2.50")
    statuses = {(await http.get(path)).status_code for path in ["/healthz", "/metrics"] * 5}
    assert statuses == {200}


async def test_forwarded_for_is_believed_from_a_trusted_proxy_only(behind_proxy: Door) -> None:
    via_proxy = behind_proxy.client("10.1.2.3")
    for client_ip in ("203.0.113.5", "203.0.113.6"):
        for _ in range(2):
            headers = {"X-Forwarded-For": client_ip}
            assert (await via_proxy.get(PUBLIC_READ, headers=headers)).status_code == 200
    # A caller that is no proxy cannot buy a new window by naming a new address.
    direct = behind_proxy.client("198.51.100.7")
    statuses = [
        (await direct.get(PUBLIC_READ, headers={"X-Forwarded-For": f"203.0.113.{n}"})).status_code
        for n in range(3)
    ]
    assert statuses == [200, 200, 429]


async def test_a_forwarded_for_is_no_new_address_where_the_services_serve(door: Door) -> None:
    """Served as every service is (`gridloop.runtime.serve`, uvicorn), a caller on the host
    that names a new address in `X-Forwarded-For` each time keeps its one window: uvicorn
    would believe the header from loopback; only the door decides, and no proxy is trusted."""
    port, done = free_port(), asyncio.Event()

    async def until_done(stop: asyncio.Event) -> None:
        await done.wait()

    threshold = gc.get_threshold()
    served = asyncio.create_task(serve(door.app, "127.0.0.1", port, [until_done]))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def up() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, what="intake served")
            statuses = [
                (await http.get(PUBLIC_READ, headers={"X-Forwarded-For": f"203.0.113.{n}"}))
                for n in range(4)
            ]
    finally:
        done.set()
        await served
        gc.unfreeze()  # `serve` freezes what the process holds; this one is a test run
        gc.set_threshold(*threshold)
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    refused(statuses[-1], 429, ["client"], "rate_limited")


def test_the_nearest_untrusted_hop_is_the_client() -> None:
    proxies = [ipaddress.ip_network("10.0.0.0/8")]
    scope = {
        "client": ("10.0.0.2", 1),
        "headers": [(b"x-forwarded-for", b"1.1.1.1, 203.0.113.9, 10.0.0.7")],
    }
    # 1.1.1.1 is whatever the client claimed; 203.0.113.9 is what our proxy saw.
    assert client_address(scope, proxies) == "203.0.113.9"
    assert client_address(scope, []) == "10.0.0.2"


def test_the_limits_come_from_the_settings() -> None:
    settings = Settings(public_rate_limit="5/second", trusted_proxies="10.0.0.1")
    assert HttpLimits.from_settings(settings) == HttpLimits("5/second", "10.0.0.1", 1_048_576)


async def test_the_openapi_names_the_door_s_answers(door: Door) -> None:
    schema = (await door.client(**door.bearer(Role.hotline)).get("/openapi.json")).json()
    responses = schema["paths"]["/reports"]["post"]["responses"]
    assert {"413", "429"} <= set(responses)
