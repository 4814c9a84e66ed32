"""The whole system, as `gridloop up` runs it (one process per service), against the
session's broker and database, with a city pack whose webhooks reach a real HTTP receiver
in this test process."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from fastapi import FastAPI, Request, Response
from pymongo import AsyncMongoClient

from gridloop.auth import CredentialStore, Role
from gridloop.citypack import CityPack, load_city_pack
from gridloop.citypack.messages import MESSAGES_FILE
from gridloop.config import DEMO_CITY_PACK
from gridloop.embedded import free_port, free_ports
from gridloop.mongo import Document
from gridloop.topology import named
from system.gateway import Gateway
from system.up import PORT_ENV, System
from tests.conftest import Servers
from tests.helpers import serving

# A class with a deadline short enough to pass during a test.
FAST_CLASS = ("event", "0505")
FAST_LIMIT = "PT3S"


@dataclass
class Delivery:
    department: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A department's webhook endpoint: stores what arrives, answers 204. Beside it, the
    stand-in message gateway the reporters' SMS and WeChat messages reach (`gateway`, set
    once the pack is written); for the cases in `lose_answers`, the first answer to each
    message is lost (recorded, then 503), as when a connection drops after the provider took
    it, so notify sends it again."""

    port: int
    deliveries: list[Delivery] = field(default_factory=list)
    gateway: Gateway | None = None
    lose_answers: set[str] = field(default_factory=set)
    repeats: int = 0  # messages the gateway received again and dropped

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/gateway/{kind}")
        async def tell(kind: str, request: Request) -> Response:
            assert self.gateway is not None
            body = await request.body()
            new = self.gateway.receive(kind, body, dict(request.headers))
            self.repeats += not new
            if new and json.loads(body)["data"]["case_id"] in self.lose_answers:
                return Response(status_code=503)
            return Response(status_code=204)

        @app.post("/hooks/{department}")
        async def receive(department: str, request: Request) -> Response:
            self.deliveries.append(
                Delivery(department, dict(request.headers), await request.body())
            )
            return Response(status_code=204)

        return app


def system_env(servers: Servers, root: Path, pack_dir: Path) -> dict[str, str]:
    """The environment of a system under test: the shared servers, a namespace and
    database of its own, the pack at `pack_dir`, a fast SLA tick, free ports."""
    namespace = f"e2e{uuid.uuid4().hex[:8]}"
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "MONGODB_URI": servers.mongodb,
        "GRIDLOOP_MONGODB_DATABASE": f"{namespace}_db",
        "GRIDLOOP_NAMESPACE": namespace,
        "GRIDLOOP_CITY_PACK": str(pack_dir),
        "GRIDLOOP_DATA_DIR": str(root / "data"),
        "GRIDLOOP_SLA_TICK_SECONDS": "0.5",
        "GRIDLOOP_KAFKA_SESSION_TIMEOUT_MS": "6000",
        **free_ports(PORT_ENV.values()),
    }


def write_pack(target: Path, receiver_port: int) -> Path:
    shutil.copytree(DEMO_CITY_PACK, target)
    city: dict[str, Any] = yaml.safe_load((target / "city.yaml").read_text(encoding="utf-8"))
    for dept in city["departments"]:
        dept["webhook"]["url"] = f"http://127.0.0.1:{receiver_port}/hooks/{dept['code']}"
    for cls in city["classes"]:
        if (cls["kind"], cls["code"]) == FAST_CLASS:
            cls["handle_limit"] = FAST_LIMIT
            cls["clock"] = "natural"  # three seconds mean something at night too
    (target / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), "utf-8")
    # Reporters by SMS or WeChat, at the stand-in gateway beside the departments' hooks.
    messages: dict[str, Any] = yaml.safe_load((target / MESSAGES_FILE).read_text("utf-8"))
    messages["channels"] = [c for c in messages["channels"] if c["kind"] != "email"]
    for channel in messages["channels"]:
        channel["url"] = f"http://127.0.0.1:{receiver_port}/gateway/{channel['kind']}"
    (target / MESSAGES_FILE).write_text(yaml.safe_dump(messages, allow_unicode=True), "utf-8")
    return target


@dataclass
class Running:
    system: System
    pack: CityPack
    receiver: Receiver
    kafka: str
    namespace: str  # of this system's topics and groups, so no other test's records reach it

    def topic(self, name: str) -> str:
        """A topic (or group) of this system as the broker names it."""
        return named(self.namespace, name)

    async def token(self, role: Role, subject: str) -> str:
        """A credential for `subject` in `role`, issued in the system's own database."""
        client: AsyncMongoClient[Document] = AsyncMongoClient(self.system.env["MONGODB_URI"])
        try:
            db = client[self.system.env["GRIDLOOP_MONGODB_DATABASE"]]
            return await CredentialStore(db).issue(role, subject)
        finally:
            await client.close()


@pytest.fixture(scope="package")
def receiver() -> Receiver:
    return Receiver(free_port())


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    async with serving(receiver.app(), receiver.port):
        yield receiver


@pytest.fixture(scope="package")
def running(
    servers: Servers, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("system")
    pack_dir = write_pack(root / "citypack", receiver.port)
    env = system_env(servers, root, pack_dir) | {
        "GRIDLOOP_WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.4,0.8",
        "GRIDLOOP_WEBHOOK_POLL_SECONDS": "0.1",
        # Tests poll public endpoints without a token from 127.0.0.1, as often as every
        # 0.1 s while the projection catches up: more than the public's default allows.
        "GRIDLOOP_PUBLIC_RATE_LIMIT": "100000/minute",
    }
    namespace = env["GRIDLOOP_NAMESPACE"]
    services = ("projections", "dispatch", "notify", "sla", "intake")
    system = System(env, root / "logs", services)
    pack = load_city_pack(pack_dir)
    receiver.gateway = Gateway(pack, root / "gateway")
    try:
        system.start()
        yield Running(system, pack, receiver, servers.kafka, namespace)
    finally:
        system.stop()
