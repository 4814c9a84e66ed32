"""The fault suite's own world: a broker and a database it may pause, the services as their
own processes (`system.up.System`, as `gridloop up` runs them) that it may kill, and a
department receiver it may take down. Every process started here is stopped here.

Run it with `make faults` (or `pytest tests/faults`); `pytest tests` leaves it out.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop import embedded
from gridloop.auth import CredentialStore, Role
from gridloop.config import DEMO_CITY_PACK
from gridloop.embedded import ServerProcess, free_port, free_ports
from gridloop.kafka import ensure_topics
from gridloop.mongo import Document
from gridloop.topology import named
from system.up import PORT_ENV, System
from tests.faults.harness import SUMMARY, SUPERVISOR, Client, Ledger, Receiver
from tests.helpers import serving

SERVICES = ("projections", "dispatch", "notify", "sla", "intake")
# Compressed time: a dead member's partitions move after 6 s; webhooks are retried within
# seconds, not hours, and one attempt never holds a lease for long.
FAULT_ENV = {
    "GRIDLOOP_KAFKA_SESSION_TIMEOUT_MS": "6000",
    "GRIDLOOP_SLA_TICK_SECONDS": "0.5",
    "GRIDLOOP_WEBHOOK_RETRY_SCHEDULE": ",".join(["0", "0.5", "1", "2"] + ["3"] * 40),
    "GRIDLOOP_WEBHOOK_JITTER": "0.2",
    "GRIDLOOP_WEBHOOK_TIMEOUT_SECONDS": "2",
    "GRIDLOOP_WEBHOOK_CIRCUIT_COOLDOWN_SECONDS": "2",
    "GRIDLOOP_WEBHOOK_POLL_SECONDS": "0.2",
}

# The one class whose deadlines pass during the suite (the load's classes have hours): the
# scale-out test reports a few, and their ladders climb while SLA workers are killed.
FAST_CLASS = "0401"  # 突发事件 road collapse
FAST_LADDER = {
    "match": {"kind": "event", "code": FAST_CLASS},
    "clock": "natural",
    "limits": {"handle": "PT3S", "explain": "PT6S"},
    "ladder": [
        {"tier": "street", "after": "PT0S"},
        {"tier": "district", "after": "PT3S"},
        {"tier": "city", "after": "PT6S"},
    ],
}


def write_pack(target: Path, receiver_port: int) -> Path:
    """The demo pack, its webhooks pointed at the receiver, duplicate merging off (every
    report of the load is a case of its own, so that counts can be compared) and the road
    collapses' ladder in seconds (`FAST_LADDER`)."""
    shutil.copytree(DEMO_CITY_PACK, target)
    city: dict[str, Any] = yaml.safe_load((target / "city.yaml").read_text(encoding="utf-8"))
    for dept in city["departments"]:
        dept["webhook"]["url"] = f"http://127.0.0.1:{receiver_port}/hooks/{dept['code']}"
    for cls in city["classes"]:
        cls["duplicate_radius_m"] = 0
    (target / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), "utf-8")
    sla: dict[str, Any] = yaml.safe_load((target / "sla.yaml").read_text(encoding="utf-8"))
    sla["rules"].append(FAST_LADDER)
    (target / "sla.yaml").write_text(yaml.safe_dump(sla, allow_unicode=True), "utf-8")
    return target


def _signal_group(server: ServerProcess, sig: signal.Signals) -> None:
    assert server.proc is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.proc.pid, sig)


@dataclass
class World:
    system: System
    tansu: ServerProcess
    secantus: ServerProcess
    receiver: Receiver
    ledger: Ledger
    root: Path
    workers: dict[str, tuple[str, int]] = field(default_factory=dict)  # added: service, port

    @property
    def kafka(self) -> str:
        return self.system.env["KAFKA_BOOTSTRAP_SERVERS"]

    @property
    def namespace(self) -> str:
        return self.system.env["GRIDLOOP_NAMESPACE"]

    def topic(self, name: str) -> str:
        """A topic or consumer group of this world as the broker names it."""
        return named(self.namespace, name)

    @property
    def mongodb(self) -> str:
        return self.system.env["MONGODB_URI"]

    @contextlib.asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncDatabase[Document]]:
        client: AsyncMongoClient[Document] = AsyncMongoClient(self.mongodb, tz_aware=True)
        try:
            yield client[self.system.env["GRIDLOOP_MONGODB_DATABASE"]]
        finally:
            await client.close()

    async def token(self, role: Role, subject: str) -> str:
        async with self.db() as db:
            return await CredentialStore(db).issue(role, subject)

    def kill(self, name: str) -> None:
        """`kill -9` the service (its whole process group): no clean shutdown, no commit."""
        process = self.system.processes[name]
        _signal_group(process, signal.SIGKILL)
        assert process.proc is not None
        process.proc.wait(10)
        process.stop()  # closes its log

    async def restart(self, name: str, extra: dict[str, str] | None = None) -> None:
        if name in self.workers:
            service, port = self.workers[name]
            await asyncio.to_thread(self.system.start_worker, service, name, port, 90.0, extra)
        else:
            await asyncio.to_thread(self.system.start_service, name, 90.0, extra)

    async def add_worker(self, service: str) -> str:
        """A second worker of `service` in its consumer group (its own port and data
        directory), known as `<service>#2`."""
        worker, port = f"{service}#2", free_port()
        self.workers[worker] = (service, port)
        extra = {"GRIDLOOP_DATA_DIR": str(self.root / "data-2")}
        await asyncio.to_thread(self.system.start_worker, service, worker, port, 90.0, extra)
        return worker

    async def remove_worker(self, worker: str) -> None:
        """Stop it (SIGTERM: it leaves its group cleanly) and forget it."""
        await asyncio.to_thread(self.system.processes.pop(worker).stop, 30.0)
        del self.workers[worker]

    def exited(self, name: str) -> bool:
        """Whether the service's process is gone (a crash it was armed for)."""
        proc = self.system.processes[name].proc
        return proc is not None and proc.poll() is not None

    async def stop_service(self, name: str) -> None:
        await asyncio.to_thread(self.system.processes[name].stop, 30.0)

    @staticmethod
    def pause(server: ServerProcess) -> None:
        _signal_group(server, signal.SIGSTOP)

    @staticmethod
    def resume(server: ServerProcess) -> None:
        _signal_group(server, signal.SIGCONT)

    async def client(self, intake: str = "intake", **options: Any) -> Client:
        """A client of `intake` (or of another worker of it)."""
        token = await self.token(Role.supervisor, SUPERVISOR)
        http = httpx.AsyncClient(
            base_url=self.system.url(intake), headers={"Authorization": f"Bearer {token}"}
        )
        return Client(http, self.ledger, **options)

    async def staff(self, service: str, role: Role, subject: str) -> httpx.AsyncClient:
        token = await self.token(role, subject)
        return httpx.AsyncClient(
            base_url=self.system.url(service), headers={"Authorization": f"Bearer {token}"}
        )


@pytest.fixture(scope="package")
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture(scope="package")
def receiver() -> Receiver:
    return Receiver(free_port())


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    async with serving(receiver.app(), receiver.port):
        yield receiver


@pytest.fixture(scope="package")
def world(receiver: Receiver, ledger: Ledger) -> Iterator[World]:
    """Its own broker and database (the suite pauses them), then every service."""
    # Not under pytest's basetemp, which other runs of pytest on the machine rotate away:
    # the services' logs stay for a look after the run; the data goes.
    root = Path(tempfile.mkdtemp(prefix="gridloop-faults-"))
    tansu, secantus = embedded.tansu(root), embedded.secantus(root)
    system: System | None = None

    def stop_all() -> None:
        for server in (tansu, secantus):  # never leave a stopped server behind
            if server.proc is not None and server.proc.poll() is None:
                World.resume(server)
        if system is not None:
            system.stop()
        for server in (secantus, tansu):
            server.stop()

    atexit.register(stop_all)  # also when the run is interrupted before the teardown
    try:
        for server in (tansu, secantus):
            server.start()
        kafka, mongodb = embedded.kafka_bootstrap(tansu), embedded.mongodb_uri(secantus)
        # A namespace of its own, though the broker is too: the suite runs the namespaced
        # names as a shared broker would.
        namespace = f"faults{uuid.uuid4().hex[:8]}"
        asyncio.run(ensure_topics(kafka, namespace=namespace))
        env = {
            **os.environ,
            "GRIDLOOP_NAMESPACE": namespace,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "MONGODB_URI": mongodb,
            "GRIDLOOP_MONGODB_DATABASE": f"faults_{uuid.uuid4().hex[:8]}",
            "GRIDLOOP_CITY_PACK": str(write_pack(root / "citypack", receiver.port)),
            "GRIDLOOP_DATA_DIR": str(root / "data"),
            **FAULT_ENV,
            **free_ports(PORT_ENV.values()),
        }
        system = System(env, root / "logs", SERVICES)
        system.start(90.0)
        yield World(system, tansu, secantus, receiver, ledger, root)
    finally:
        stop_all()
        atexit.unregister(stop_all)
        for data in ("mongodb", "data", "citypack"):
            shutil.rmtree(root / data, ignore_errors=True)
        print(f"\nfault suite logs: {root / 'logs'}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        terminalreporter.write_line("\n".join(SUMMARY))
