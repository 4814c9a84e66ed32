"""A reporter's name and phone stay with the roles that may see them: one case, from a
hotline call (with the caller's name and phone) to its department's webhook, driven through
intake's and dispatch's real HTTP apps, dispatch's and notify's real handlers, and notify's
deliverer posting to a real receiver. Neither the webhook nor the department's view carries
the name or phone; no log line, at DEBUG, carries them, a bearer token or a webhook secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pymongo import AsyncMongoClient

from gridloop.auth import CredentialStore, Role
from gridloop.cases.reader import CaseReader
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.embedded import free_port
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.mongo import Document
from schemas.envelope import Envelope, decode
from schemas.events import CaseFiled
from services.dispatch.api import create_app as dispatch_app
from services.dispatch.handlers import Dispatch
from services.intake.api import Intake, follow_key
from services.intake.api import create_app as intake_app
from services.notify.admin import create_app as notify_app
from services.notify.core import RetrySchedule
from services.notify.service import Deliverer, DeliveryPolicy, Notify
from services.notify.store import DeliveryStore
from services.projections.store import CaseStore
from system.cli import WIRE_LOGGERS, quiet_wire_loggers
from tests.conftest import Servers
from tests.helpers import eventually, serving
from tests.integration.test_intake_api import records_of

NAME, PHONE = "王秀英", "13712345678"
CALL: dict[str, Any] = {
    "channel": "hotline",
    "kind": "event",
    "class_code": "0505",  # illegal parking: the traffic police's
    "point": {"lon": 116.4005, "lat": 39.9201},  # in a grid SUP-0001 patrols
    "description": "a van blocks the fire lane",
    "reporter": {"name": NAME, "phone": PHONE},
}
POLICY = DeliveryPolicy(schedule=RetrySchedule.parse("0,0.2", jitter=0), timeout=2.0, poll=0.05)


@dataclass
class Receiver:
    port: int
    bodies: list[bytes] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/{department}")
        async def receive(department: str, request: Request) -> Response:
            self.bodies.append(await request.body())
            return Response(status_code=204)

        return app


LIFECYCLE = ("reports", "verifications", "dispatches")


@dataclass
class Loop:
    """The services of one case, in this process, on the session's broker and database."""

    http: dict[str, httpx.AsyncClient]
    tokens: dict[str, str]
    cases: CaseStore
    dispatch: Dispatch
    notify: Notify
    kafka: str
    credentials: CredentialStore
    receiver: Receiver

    async def call(self, service: str, method: str, path: str, who: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        answer = await self.http[service].request(method, path, headers=headers, **kw)
        assert answer.status_code < 300, answer.text
        return answer.json()

    async def project(self, case_id: str, events: int) -> list[Envelope]:
        found = [
            decode(r.value, r.headers)
            for r in await records_of(self.kafka, case_id.encode(), events, topics=LIFECYCLE)
        ]
        for env in found:
            await self.cases.apply(env)
        return found


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record, at DEBUG, as `gridloop run` configures logging (`configure_logging`:
    the wire loggers at INFO or above)."""
    caplog.set_level(logging.DEBUG)
    before = {name: logging.getLogger(name).level for name in WIRE_LOGGERS}
    quiet_wire_loggers()
    yield caplog
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
async def loop(servers: Servers, logs: pytest.LogCaptureFixture) -> AsyncIterator[Loop]:
    await ensure_topics(servers.kafka)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    producer = EventProducer(servers.kafka)
    await producer.start()
    pack = load_city_pack(DEMO_CITY_PACK)
    credentials = CredentialStore(db)
    tokens = {
        "hotline": await credentials.issue(Role.hotline, "op-7"),
        "supervisor": await credentials.issue(Role.supervisor, "SUP-0001"),
        "admin": await credentials.issue(Role.admin, "ops"),
    }
    cases, deliveries = CaseStore(db), DeliveryStore(db)
    await deliveries.create_indexes()
    intake = Intake(pack, producer, db, await follow_key(db))
    dispatch = Dispatch.on(pack, db, producer)
    apps = {
        "intake": intake_app(intake),
        "dispatch": dispatch_app(dispatch, credentials),
        "notify": notify_app(pack, deliveries, credentials),
    }
    receiver = Receiver(free_port())
    wake, stop = asyncio.Event(), asyncio.Event()
    async with serving(receiver.app(), receiver.port), httpx.AsyncClient() as out:
        deliverer = asyncio.create_task(Deliverer(pack, deliveries, out, POLICY, wake).run(stop))
        http = {
            n: httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://t")
            for n, a in apps.items()
        }
        notify = Notify(pack, CaseReader(db), deliveries, wake)
        yield Loop(http, tokens, cases, dispatch, notify, servers.kafka, credentials, receiver)
        stop.set()
        await deliverer
        for client in http.values():
            await client.aclose()
    await producer.stop()
    await mongo.close()


def _lines(logs: pytest.LogCaptureFixture) -> str:
    """Each record as a handler would write it: message, arguments, traceback."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in logs.records)


async def test_a_hotline_case_reaches_its_department_without_name_or_phone(
    loop: Loop, logs: pytest.LogCaptureFixture
) -> None:
    case_id = (await loop.call("intake", "POST", "/reports", "hotline", json=CALL))["case_id"]
    await loop.project(case_id, 1)
    verification = {"confirmed": True, "note": "the van is there"}
    await loop.call(
        "intake", "POST", f"/cases/{case_id}/verification", "supervisor", json=verification
    )
    filed = [e for e in await loop.project(case_id, 3) if isinstance(e.data, CaseFiled)]
    await loop.dispatch.on_event(filed[0])
    [dispatched] = [e for e in await loop.project(case_id, 4) if e.type.endswith("dispatched")]
    department = dispatched.data.department  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{loop.receiver.port}/hooks/{department}"
    hook = {"url": url, "previous_secret_hours": 0}
    secret = (
        await loop.call("notify", "PUT", f"/departments/{department}/webhook", "admin", json=hook)
    )["secret"]
    await loop.notify.on_event(dispatched)
    bodies = await eventually(
        lambda: asyncio.sleep(0, loop.receiver.bodies or None), what="a webhook"
    )
    loop.tokens["department"] = await loop.credentials.issue(Role.department, department)
    ack = f"/departments/{department}/cases/{case_id}/acknowledge"
    await loop.call("dispatch", "POST", ack, "department", json={"handler_id": "crew-3"})
    seen_by_department = await loop.call("intake", "GET", f"/cases/{case_id}", "department")
    seen_by_hotline = await loop.call("intake", "GET", f"/cases/{case_id}", "hotline")

    # The name and phone were in the case all along: the hotline operator sees them.
    assert seen_by_hotline["reporter"]["phone"] == PHONE
    # (a) what the department's endpoint received
    assert case_id.encode() in bodies[0]
    for body in bodies:
        assert PHONE.encode() not in body and NAME.encode() not in body
        assert PHONE not in str(json.loads(body)) and NAME not in str(json.loads(body))
    # (c) what the department reads of its own case
    assert seen_by_department["case_id"] == case_id
    assert PHONE not in str(seen_by_department) and NAME not in str(seen_by_department)
    # (b) every log line, at DEBUG, of all of it
    text = _lines(logs)
    logging.getLogger("services.notify").debug("control")  # the capture sees DEBUG lines
    assert "control" in _lines(logs)
    for leak in (NAME, PHONE, secret, *loop.tokens.values()):
        assert leak not in text, leak
