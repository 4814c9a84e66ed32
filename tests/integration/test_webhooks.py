"""Webhook delivery on a real database to real HTTP receivers (uvicorn in the test loop),
every signature verified with the `standardwebhooks` library; failures injected by the
receiver: 5xx, timeouts, 429 with Retry-After, 410, connection refused."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI, Request, Response
from pymongo import AsyncMongoClient
from standardwebhooks import Webhook, WebhookVerificationError

from gridloop.auth import CredentialStore, Role
from gridloop.cases.reader import CaseReader
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.embedded import free_port
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import Actor, CaseDispatched, CaseExtended, EventData
from schemas.events import Role as ActorRole
from schemas.webhooks import GeoPoint, validate
from services.notify import service
from services.notify.admin import create_app
from services.notify.core import RetrySchedule
from services.notify.service import Deliverer, DeliveryPolicy, Notify
from services.notify.store import ENDPOINTS_FRESH_SECONDS, DeliveryStore
from tests.conftest import Servers
from tests.helpers import eventually, serving
from tests.integration.notify_world import attempts_logged

CC = Actor(role=ActorRole.command_centre, id="auto-dispatch")


@dataclass
class Arrival:
    department: str
    webhook_id: str
    message: dict[str, Any]
    at: float  # monotonic
    verified_with: list[str]
    host: str = ""  # the Host header it came with


@dataclass
class Script:
    """What a department's endpoint answers: `steps` first, then `default`."""

    steps: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    default: tuple[int, dict[str, str], float] = (204, {}, 0.0)


@dataclass
class Receivers:
    """One HTTP server standing in for every department; it verifies each signature against
    the secrets it knows for the department (several during a key rotation)."""

    port: int
    secrets: dict[str, list[str]] = field(default_factory=dict)
    scripts: dict[str, Script] = field(default_factory=dict)
    arrivals: list[Arrival] = field(default_factory=list)  # verified and answered 2xx
    requests: list[tuple[str, str, float]] = field(default_factory=list)  # every request

    def url(self, department: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{department}"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/{department}")
        async def receive(department: str, request: Request) -> Response:
            body = await request.body()
            self.requests.append((department, request.headers["webhook-id"], time.monotonic()))
            good = []
            for secret in self.secrets.get(department, []):
                try:
                    message = Webhook(secret).verify(body, dict(request.headers))
                    good.append(secret)
                except WebhookVerificationError:
                    pass
            if not good:
                return Response(status_code=401)
            script = self.scripts.get(department, Script())
            status, headers, delay = script.steps.pop(0) if script.steps else script.default
            if delay:
                await asyncio.sleep(delay)
            if 200 <= status < 300:
                self.arrivals.append(
                    Arrival(
                        department,
                        request.headers["webhook-id"],
                        message,
                        time.monotonic(),
                        good,
                        request.headers["host"],
                    )
                )
            return Response(status_code=status, headers=headers)

        return app

    def of(self, department: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.department == department]


@pytest.fixture(scope="module")
async def receivers() -> AsyncIterator[Receivers]:
    found = Receivers(free_port())
    async with serving(found.app(), found.port):
        yield found


def pack_for(target: Path, receivers: Receivers, refused_port: int) -> CityPack:
    """The demo pack, its departments' webhooks pointing at the receivers; ROADS at a port
    where nothing listens."""
    shutil.copytree(DEMO_CITY_PACK, target)
    city: dict[str, Any] = yaml.safe_load((target / "city.yaml").read_text(encoding="utf-8"))
    for dept in city["departments"]:
        if dept.get("webhook"):
            dept["webhook"]["url"] = receivers.url(dept["code"])
            if dept["code"] == "ROADS":
                dept["webhook"]["url"] = f"http://127.0.0.1:{refused_port}/hooks/ROADS"
            receivers.secrets[dept["code"]] = [dept["webhook"]["secret"]]
    (target / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), "utf-8")
    return load_city_pack(target)


@dataclass
class Harness:
    pack: CityPack
    db: Any
    store: DeliveryStore
    notify: Notify
    deliverer: Deliverer
    receivers: Receivers
    admin: httpx.AsyncClient
    admin_token: dict[str, str]
    pack_dir: Path

    async def send(self, data: EventData, department: str = "SANITATION") -> Envelope:
        """Project a minimal case (if new) and hand the event to notify's handler."""
        await self.db["cases"].update_one(
            {"_id": data.case_id},
            {
                # The projection follows the events (notify waits for one behind them).
                "$max": {"version": getattr(data, "version", None) or 3},
                "$setOnInsert": {
                    "state": "dispatched",
                    "department": department,
                    "kind": "event",
                    "class_code": "0102",
                    "description": "暴露垃圾",
                    "point": {"type": "Point", "coordinates": [116.4025, 39.9205]},
                },
            },
            upsert=True,
        )
        env = Envelope(data, "/tests")
        assert await self.notify.on_event(env) == []
        return env

    async def delivery(self, case_id: str, status: str, department: str | None = None) -> Document:
        query: Document = {"case_id": case_id, "status": status}
        if department:
            query["department"] = department

        async def probe() -> Document | None:
            doc = await self.store.deliveries.find_one(query)
            return await self.store.get(doc["_id"]) if doc else None

        return await eventually(probe, within=20, what=f"{status} delivery of {case_id}")


def dispatched(
    department: str, assisting: list[str] | None = None, version: int = 3
) -> CaseDispatched:
    return CaseDispatched(
        case_id=f"C-{uuid.uuid4().hex[:10]}",
        version=version,
        actor=CC,
        department=department,
        assisting=assisting or [],
        deadline=datetime.now(UTC) + timedelta(hours=4),
        rule="test",
    )


POLICY = DeliveryPolicy(
    schedule=RetrySchedule.parse("0,0.3,0.6", jitter=0),
    timeout=1.0,
    concurrency=2,
    circuit_threshold=1000,
    circuit_cooldown=0.5,
    poll=0.05,
)


@pytest.fixture
def policy() -> DeliveryPolicy:
    return POLICY


@pytest.fixture
async def harness(
    servers: Servers, receivers: Receivers, policy: DeliveryPolicy, tmp_path: Path
) -> AsyncIterator[Harness]:
    receivers.scripts.clear()
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    pack = pack_for(tmp_path / "pack", receivers, free_port())
    store = DeliveryStore(db)
    await store.create_indexes()
    wake = asyncio.Event()
    async with httpx.AsyncClient(timeout=policy.timeout) as http:
        deliverer = Deliverer(pack, store, http, policy, wake)
        stop = asyncio.Event()
        running = asyncio.create_task(deliverer.run(stop))
        credentials = CredentialStore(db)
        token = {"Authorization": f"Bearer {await credentials.issue(Role.admin, 'ops')}"}
        transport = httpx.ASGITransport(app=create_app(pack, store, credentials))
        async with httpx.AsyncClient(transport=transport, base_url="http://notify") as admin:
            yield Harness(
                pack,
                db,
                store,
                Notify(pack, CaseReader(db), store, wake),
                deliverer,
                receivers,
                admin,
                token,
                tmp_path / "pack",
            )
        stop.set()
        await running
    await mongo.close()


# --- signed, stable, logged ---------------------------------------------------------------


async def test_a_joint_case_reaches_every_department_signed_and_logged(harness: Harness) -> None:
    harness.receivers.scripts["WATER"] = Script(steps=[(500, {}, 0.0)])
    event = dispatched("WATER", ["SANITATION"])
    env = await harness.send(event, "WATER")
    lead = await harness.delivery(event.case_id, "delivered", "WATER")
    helper = await harness.delivery(event.case_id, "delivered", "SANITATION")

    [arrival] = [a for a in harness.receivers.of("WATER") if a.webhook_id == lead["_id"]]
    assert arrival.message["type"] == "case.dispatched"
    assert set(arrival.message) == {"type", "timestamp", "data"}
    assert arrival.message["timestamp"] == env.time.isoformat()
    assert arrival.message["data"]["case_id"] == event.case_id
    assert arrival.message["data"]["role"] == "lead"
    assert arrival.message["data"]["description"] == "暴露垃圾"
    [other] = [a for a in harness.receivers.of("SANITATION") if a.webhook_id == helper["_id"]]
    assert other.message["data"]["role"] == "assisting"
    for message in (arrival.message, other.message):  # as docs/departments.md has it
        sent = validate(message)
        assert sent.data.point == GeoPoint(type="Point", coordinates=(116.4025, 39.9205))
        assert sent.data.class_name is not None and sent.data.grid_name is None  # no grid

    # The failed attempt and the retry carried the same webhook-id; both were logged.
    ids = [wid for dept, wid, _ in harness.receivers.requests if dept == "WATER"]
    assert ids.count(lead["_id"]) == 2
    log = lead["attempt_log"]
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in log] == [
        (1, 500, "failed"),
        (2, 204, "delivered"),
    ]
    assert lead["attempts"] == 2


async def test_a_redelivered_event_is_not_sent_twice(harness: Harness) -> None:
    event = dispatched("SANITATION")
    await harness.send(event)
    done = await harness.delivery(event.case_id, "delivered")
    await harness.send(event)  # Kafka redelivers after a crash before the commit
    await asyncio.sleep(0.3)
    assert [a.webhook_id for a in harness.receivers.arrivals].count(done["_id"]) == 1
    assert await harness.store.deliveries.count_documents({"case_id": event.case_id}) == 1


# --- a department's own deliveries ---------------------------------------------------------


async def test_a_department_lists_its_own_deliveries_with_its_credential(
    harness: Harness,
) -> None:
    harness.receivers.scripts["SANITATION"] = Script(default=(503, {}, 0.0))
    dead = dispatched("SANITATION")
    await harness.send(dead)
    await harness.delivery(dead.case_id, "dead")
    harness.receivers.scripts["SANITATION"] = Script()
    fine = dispatched("SANITATION")
    await harness.send(fine)
    await harness.delivery(fine.case_id, "delivered")
    theirs = dispatched("WATER")
    await harness.send(theirs, "WATER")
    await harness.delivery(theirs.case_id, "delivered")
    credentials = CredentialStore(harness.db)
    sanitation = {
        "Authorization": f"Bearer {await credentials.issue(Role.department, 'SANITATION')}"
    }

    listed = await harness.admin.get("/department/deliveries", headers=sanitation)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert [d["case_id"] for d in page["deliveries"]] == [fine.case_id, dead.case_id]
    assert page["next"] is None
    newest, oldest = page["deliveries"]
    assert (newest["status"], newest["attempts"], newest["next_attempt_at"]) == (
        "delivered",
        1,
        None,
    )
    assert (oldest["status"], oldest["attempts"], oldest["last_status"]) == ("dead", 3, 503)
    assert newest["type"] == "case.dispatched"

    only_dead = await harness.admin.get(
        "/department/deliveries", params={"status": "dead"}, headers=sanitation
    )
    assert [d["case_id"] for d in only_dead.json()["deliveries"]] == [dead.case_id]
    first = await harness.admin.get(
        "/department/deliveries", params={"limit": 1}, headers=sanitation
    )
    assert [d["case_id"] for d in first.json()["deliveries"]] == [fine.case_id]
    assert first.json()["next"] == 1
    second = await harness.admin.get(
        "/department/deliveries", params={"limit": 1, "offset": 1}, headers=sanitation
    )
    assert [d["case_id"] for d in second.json()["deliveries"]] == [dead.case_id]

    one = await harness.admin.get(
        f"/department/deliveries/{oldest['webhook_id']}", headers=sanitation
    )
    assert one.status_code == 200
    assert [a["status_code"] for a in one.json()["attempt_log"]] == [503, 503, 503]
    assert one.json()["message"]["data"]["case_id"] == dead.case_id
    water = await harness.store.deliveries.find_one({"case_id": theirs.case_id})
    assert water is not None
    water_id = water["_id"]
    not_theirs = await harness.admin.get(f"/department/deliveries/{water_id}", headers=sanitation)
    assert not_theirs.status_code == 404  # another department's: as unknown
    bad = await harness.admin.get(
        "/department/deliveries", params={"status": "lost"}, headers=sanitation
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][:2] == ["query", "status"]
    admin = await harness.admin.get("/department/deliveries", headers=harness.admin_token)
    assert admin.status_code == 403  # the path is a department's: the admin has /deliveries


# --- the schedule, dead letters, replay -----------------------------------------------------


async def test_5xx_follows_the_schedule_then_is_dead_lettered_and_replayed(
    harness: Harness,
) -> None:
    harness.receivers.scripts["SANITATION"] = Script(default=(503, {}, 0.0))
    event = dispatched("SANITATION")
    await harness.send(event)
    dead = await harness.delivery(event.case_id, "dead")
    log = dead["attempt_log"]
    assert [a["status_code"] for a in log] == [503, 503, 503]
    assert dead["dead_reason"] == "exhausted"
    gaps = [(b["at"] - a["at"]).total_seconds() for a, b in itertools.pairwise(log)]
    assert gaps[0] >= 0.3 * 0.9 and gaps[1] >= 0.6 * 0.9  # the schedule, no jitter here

    harness.receivers.scripts["SANITATION"] = Script()
    replayed = await harness.admin.post(
        f"/deliveries/{dead['_id']}/replay", headers=harness.admin_token
    )
    assert replayed.status_code == 202, replayed.text
    assert replayed.json() == {"replayed": 1}
    again = await harness.delivery(event.case_id, "delivered")
    assert again["_id"] == dead["_id"]  # the same webhook-id
    assert again["replays"] == 1
    assert len(again["attempt_log"]) == 4
    not_dead = await harness.admin.post(
        f"/deliveries/{dead['_id']}/replay", headers=harness.admin_token
    )
    assert not_dead.status_code == 409


async def test_429_with_retry_after_is_honoured(harness: Harness) -> None:
    harness.receivers.scripts["SANITATION"] = Script(steps=[(429, {"Retry-After": "1"}, 0.0)])
    event = dispatched("SANITATION")
    await harness.send(event)
    done = await harness.delivery(event.case_id, "delivered")
    first, second = done["attempt_log"]
    assert (first["status_code"], first["retry_after"]) == (429, 1.0)
    # The schedule alone would retry after 0.3 s; the receiver asked for 1 s.
    assert (second["at"] - first["at"]).total_seconds() >= 0.95


async def test_410_disables_the_endpoint_until_it_is_enabled(harness: Harness) -> None:
    harness.receivers.scripts["SANITATION"] = Script(steps=[(410, {}, 0.0)])
    first = dispatched("SANITATION")
    await harness.send(first)
    gone = await harness.delivery(first.case_id, "dead")
    assert gone["dead_reason"] == "gone"
    assert len(gone["attempt_log"]) == 1  # never retried

    waiting = dispatched("SANITATION")
    await harness.send(waiting)
    await asyncio.sleep(0.5)
    doc = await harness.store.deliveries.find_one({"case_id": waiting.case_id})
    assert doc is not None and doc["status"] == "pending" and doc["attempts"] == 0
    info = await harness.admin.get("/departments/SANITATION/webhook", headers=harness.admin_token)
    assert info.json()["disabled"].startswith("410 Gone")
    assert info.json()["pending"] == 1

    enabled = await harness.admin.post(
        "/departments/SANITATION/webhook/enable", headers=harness.admin_token
    )
    assert enabled.status_code == 200
    await harness.delivery(waiting.case_id, "delivered")


async def test_timeouts_and_refused_connections_are_retried_then_dead(harness: Harness) -> None:
    harness.receivers.scripts["SANITATION"] = Script(default=(204, {}, 5.0))  # stalls
    slow, refused = dispatched("SANITATION"), dispatched("ROADS")
    await harness.send(slow)
    await harness.send(refused, "ROADS")
    dead_refused = await harness.delivery(refused.case_id, "dead")
    assert all("ConnectError" in (a["error"] or "") for a in dead_refused["attempt_log"])
    assert len(dead_refused["attempt_log"]) == 3
    dead_slow = await harness.delivery(slow.case_id, "dead")
    assert all("Timeout" in (a["error"] or "") for a in dead_slow["attempt_log"])
    listed = await harness.admin.get(
        "/deliveries", params={"status": "dead"}, headers=harness.admin_token
    )
    assert {d["case_id"] for d in listed.json()} == {slow.case_id, refused.case_id}
    assert all("body" not in d for d in listed.json())


# --- isolation and order ------------------------------------------------------------------


async def test_a_stalled_department_does_not_delay_another(harness: Harness) -> None:
    """Deliveries to a healthy department all arrive before the stalled department's first
    attempt has even timed out."""
    harness.receivers.scripts["WATER"] = Script(default=(204, {}, 3.0))
    started = time.monotonic()
    for _ in range(6):
        await harness.send(dispatched("WATER"), "WATER")
    healthy = [dispatched("SANITATION") for _ in range(6)]
    for event in healthy:
        await harness.send(event)
    for event in healthy:
        await harness.delivery(event.case_id, "delivered")
    ours = {e.case_id for e in healthy}
    arrivals = [
        a.at for a in harness.receivers.of("SANITATION") if a.message["data"]["case_id"] in ours
    ]
    assert len(arrivals) == 6
    first_timeout = started + POLICY.timeout
    assert max(arrivals) < first_timeout, (max(arrivals) - started, POLICY.timeout)
    assert not [a for a in harness.receivers.of("WATER") if a.at > started]


async def test_a_case_messages_arrive_in_their_order(harness: Harness) -> None:
    # The first message fails once: the second must wait for it, not overtake it.
    harness.receivers.scripts["SANITATION"] = Script(steps=[(500, {}, 0.0)])
    first = dispatched("SANITATION", version=3)
    extended = CaseExtended(
        case_id=first.case_id,
        version=4,
        actor=CC,
        deadline=datetime.now(UTC) + timedelta(days=2),
    )
    redispatched = first.model_copy(update={"version": 5})
    for event in (first, extended, redispatched):
        await harness.send(event)
    await eventually(lambda: _count(harness, first.case_id, 3), within=20, what="three deliveries")
    mine = [
        a
        for a in harness.receivers.of("SANITATION")
        if a.message["data"]["case_id"] == first.case_id
    ]
    assert [(a.message["type"], a.message["data"]["version"]) for a in mine] == [
        ("case.dispatched", 3),
        ("case.extended", 4),
        ("case.dispatched", 5),
    ]


async def _count(harness: Harness, case_id: str, n: int) -> bool:
    delivered = await harness.store.deliveries.count_documents(
        {"case_id": case_id, "status": "delivered"}
    )
    return delivered >= n


# --- endpoints, rotation, SSRF --------------------------------------------------------------


async def test_set_webhook_rotates_the_secret_with_an_overlap(harness: Harness) -> None:
    url = harness.receivers.url("SANITATION")
    old = harness.receivers.secrets["SANITATION"][0]
    forbidden = await harness.admin.put("/departments/SANITATION/webhook", json={"url": url})
    assert forbidden.status_code == 401
    answer = await harness.admin.put(
        "/departments/SANITATION/webhook", json={"url": url}, headers=harness.admin_token
    )
    assert answer.status_code == 200, answer.text
    new = answer.json()["secret"]
    assert new.startswith("whsec_") and new != old
    shown = await harness.admin.get("/departments/SANITATION/webhook", headers=harness.admin_token)
    assert new not in shown.text
    assert shown.json()["signing_secrets"] == 2  # the old one still signs during the overlap

    harness.receivers.secrets["SANITATION"] = [old, new]
    event = dispatched("SANITATION")
    await harness.send(event)
    done = await harness.delivery(event.case_id, "delivered")
    [arrival] = [a for a in harness.receivers.arrivals if a.webhook_id == done["_id"]]
    assert set(arrival.verified_with) == {old, new}

    # Without an overlap, only the new secret signs.
    again = await harness.admin.put(
        "/departments/SANITATION/webhook",
        json={"url": url, "previous_secret_hours": 0},
        headers=harness.admin_token,
    )
    newest = again.json()["secret"]
    harness.receivers.secrets["SANITATION"] = [old, new, newest]
    event = dispatched("SANITATION")
    await harness.send(event)
    done = await harness.delivery(event.case_id, "delivered")
    [arrival] = [a for a in harness.receivers.arrivals if a.webhook_id == done["_id"]]
    assert arrival.verified_with == [newest]


async def test_the_delivery_connects_to_the_address_that_was_checked(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a host that resolves to an allowed address for the check and to
    another right after. `dept.invalid` resolves nowhere (RFC 2606) but through this
    resolver, whose first answer is the receiver's loopback address (the demo pack allows
    private addresses) and every later one the cloud metadata service."""
    answers: list[list[str]] = []
    real = service.resolve

    async def rebinding(host: str, port: int | None) -> list[str]:
        if host != "dept.invalid":
            return await real(host, port)
        answers.append(["169.254.169.254"] if answers else ["127.0.0.1"])
        return answers[-1]

    monkeypatch.setattr(service, "resolve", rebinding)
    url = f"http://dept.invalid:{harness.receivers.port}/hooks/SANITATION"
    await harness.store.set_webhook(harness.pack, "SANITATION", url, timedelta(hours=1))
    event = dispatched("SANITATION")
    await harness.send(event)
    done = await harness.delivery(event.case_id, "delivered")
    [arrival] = [a for a in harness.receivers.arrivals if a.webhook_id == done["_id"]]
    # Sent to the address checked, named as the URL names it; resolved once.
    assert arrival.host == f"dept.invalid:{harness.receivers.port}"
    assert answers == [["127.0.0.1"]]


@pytest.mark.parametrize(
    ("url", "loc_type"),
    [
        ("ftp://dept.example.org/hooks", "url_refused"),
        ("http://10.0.0.7/hooks", "url_refused"),
        ("http://169.254.169.254/latest/meta-data", "url_refused"),
        ("http://[::1]:9/hooks", "url_refused"),
    ],
)
async def test_private_urls_are_refused_when_the_pack_does_not_allow_them(
    harness: Harness, url: str, loc_type: str
) -> None:
    (harness.pack_dir / "routing.yaml").write_text(
        "format: gridloop-routing/1\nwebhooks: {allow_private_addresses: false}\n", "utf-8"
    )
    strict = load_city_pack(harness.pack_dir)
    transport = httpx.ASGITransport(
        app=create_app(strict, harness.store, CredentialStore(harness.db))
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://notify") as admin:
        answer = await admin.put(
            "/departments/SANITATION/webhook", json={"url": url}, headers=harness.admin_token
        )
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"][0]
    assert (detail["loc"], detail["type"]) == (["body", "url"], loc_type)
    assert await harness.store.endpoints.count_documents({}) == 0  # nothing changed


async def test_loopback_is_allowed_where_the_pack_allows_it(harness: Harness) -> None:
    unknown = await harness.admin.put(
        "/departments/NOPE/webhook",
        json={"url": "http://127.0.0.1:1/x"},
        headers=harness.admin_token,
    )
    assert unknown.status_code == 404
    ok = await harness.admin.put(
        "/departments/SANITATION/webhook",
        json={"url": "http://127.0.0.1:1/x"},
        headers=harness.admin_token,
    )
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",  # the cloud metadata service
        "http://[fe80::1]/x",
        "http://[::ffff:169.254.169.254]/x",
        "http://[2002:a9fe:a9fe::]/x",  # 6to4
        "http://[64:ff9b::a9fe:a9fe]/x",  # NAT64
        "http://2852039166/x",  # 169.254.169.254 as one number
    ],
)
async def test_link_local_is_refused_even_where_private_addresses_are_allowed(
    harness: Harness, url: str
) -> None:
    assert harness.pack.routing.webhooks.allow_private_addresses  # the demo pack's
    answer = await harness.admin.put(
        "/departments/SANITATION/webhook", json={"url": url}, headers=harness.admin_token
    )
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"][0]
    assert (detail["loc"], detail["type"]) == (["body", "url"], "url_refused")
    assert "link-local" in detail["msg"]
    assert await harness.store.endpoints.count_documents({}) == 0  # nothing changed


@pytest.mark.parametrize(
    "policy",
    [
        DeliveryPolicy(
            schedule=RetrySchedule.parse("0,0.1,0.1,0.1,0.1,0.1", jitter=0),
            timeout=1.0,
            concurrency=4,
            circuit_threshold=2,
            circuit_cooldown=60.0,
            poll=0.05,
        )
    ],
)
async def test_the_circuit_opens_after_repeated_failures(harness: Harness) -> None:
    for _ in range(5):
        await harness.send(dispatched("ROADS"), "ROADS")  # nothing listens
    await eventually(lambda: _attempts(harness, "ROADS", 2), within=10, what="two failed attempts")
    await asyncio.sleep(0.6)  # many retries would be due by now, were the circuit closed
    count = await attempts_logged(harness.store, {"department": "ROADS"})
    assert count <= 4  # the first wave (concurrency 4) at most; then the circuit holds
    assert (
        await harness.store.deliveries.count_documents({"department": "ROADS", "status": "pending"})
        == 5
    )


async def _attempts(harness: Harness, department: str, n: int) -> bool:
    return await attempts_logged(harness.store, {"department": department}) >= n


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli_env(servers: Servers, harness: Harness) -> Iterator[dict[str, str]]:
    yield {
        **os.environ,
        "MONGODB_URI": servers.mongodb,
        "GRIDLOOP_MONGODB_DATABASE": harness.db.name,
        "GRIDLOOP_CITY_PACK": str(harness.pack_dir),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }


def _gridloop(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "system", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_cli_sets_a_webhook_and_replays_dead_deliveries(
    harness: Harness, cli_env: dict[str, str]
) -> None:
    url = harness.receivers.url("SANITATION")
    done = await asyncio.to_thread(
        _gridloop, cli_env, "department", "set-webhook", "SANITATION", url
    )
    assert done.returncode == 0, done.stderr
    secret = next(w for w in done.stdout.split() if w.startswith("whsec_"))
    refused = await asyncio.to_thread(
        _gridloop, cli_env, "department", "set-webhook", "SANITATION", "gopher://x"
    )
    assert refused.returncode == 1
    assert "scheme" in refused.stdout + refused.stderr

    async def seen() -> bool:
        """The running worker takes up a change made elsewhere (the CLI) within
        `ENDPOINTS_FRESH_SECONDS`, not at once."""
        endpoint = await harness.store.endpoint(harness.pack, "SANITATION")
        return endpoint is not None and endpoint.secrets[0] == secret

    await eventually(seen, within=ENDPOINTS_FRESH_SECONDS + 5, what="the new secret in use")
    harness.receivers.secrets["SANITATION"].append(secret)
    harness.receivers.scripts["SANITATION"] = Script(default=(500, {}, 0.0))
    event = dispatched("SANITATION")
    await harness.send(event)
    dead = await harness.delivery(event.case_id, "dead")
    harness.receivers.scripts["SANITATION"] = Script()
    replay = await asyncio.to_thread(
        _gridloop, cli_env, "webhooks", "replay", "--department", "SANITATION"
    )
    assert replay.returncode == 0, replay.stderr
    assert "1 delivery" in replay.stdout
    delivered = await harness.delivery(event.case_id, "delivered")
    assert delivered["_id"] == dead["_id"]
    [arrival] = [a for a in harness.receivers.arrivals if a.webhook_id == dead["_id"]]
    assert secret in arrival.verified_with
