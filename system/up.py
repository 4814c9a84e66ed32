"""`gridloop up`: the whole system on one machine, each service its own process.

Used by the CLI and by the end-to-end tests alike, so what the tests drive is what a
newcomer runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gridloop import embedded
from gridloop.config import Settings
from gridloop.embedded import ServerProcess
from gridloop.kafka import ensure_topics

# Readers first, so that the first report finds its consumers ready.
SERVICES = (
    "projections",
    "evaluation",
    "dispatch",
    "notify",
    "sla",
    "intake",
    "console",
    "desk",
)
PORT_ENV = {
    "intake": "GRIDLOOP_INTAKE_PORT",
    "dispatch": "GRIDLOOP_DISPATCH_PORT",
    "notify": "GRIDLOOP_NOTIFY_PORT",
    "sla": "GRIDLOOP_SLA_PORT",
    "projections": "GRIDLOOP_PROJECTIONS_PORT",
    "evaluation": "GRIDLOOP_EVALUATION_PORT",
    "console": "GRIDLOOP_CONSOLE_PORT",
    "desk": "GRIDLOOP_DESK_PORT",
}


@dataclass
class System:
    """The services as child processes of this one, configured by one environment."""

    env: dict[str, str]
    logs: Path
    services: tuple[str, ...] = SERVICES
    processes: dict[str, ServerProcess] = field(default_factory=dict)
    # How a service is started: `<launcher> run <name>` (a bench runs another checkout's
    # services with that checkout's interpreter, to compare two versions in one run).
    launcher: tuple[str, ...] = (sys.executable, "-m", "system")

    def start(self, timeout: float = 60.0) -> None:
        for name in self.services:
            self.start_service(name, timeout)

    def start_service(
        self, name: str, timeout: float = 60.0, extra: dict[str, str] | None = None
    ) -> None:
        """Start `name` (with `extra` variables besides the system's: a fault to arm)."""
        argv = [*self.launcher, "run", name]
        env = self.env | (extra or {})
        proc = ServerProcess(name, argv, self.port(name), self.logs / f"{name}.log", env=env)
        self.processes[name] = proc
        proc.start(timeout)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.processes.pop(name).stop()

    def port(self, name: str) -> int:
        default: int = Settings.model_fields[f"{name}_port"].default
        return int(self.env.get(PORT_ENV[name], default))

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    def failed(self) -> list[str]:
        return [n for n, p in self.processes.items() if p.proc and p.proc.poll() is not None]


def _print(console: Console, system: System, servers: dict[str, str]) -> None:
    table = Table(title="gridloop is up")
    table.add_column("component")
    table.add_column("listens on", overflow="fold")
    for name, where in servers.items():
        table.add_row(name, where)
    for name in system.processes:
        table.add_row(name, system.url(name))
    console.print(table)
    console.print(f"Logs: {system.logs}")
    console.print(
        f"Submit a report:  curl -X POST {system.url('intake')}/reports "
        '-H "authorization: Bearer $TOKEN" '
        "-H 'content-type: application/json' -d @docs/example-report.json  (README.md)"
    )
    console.print(f"Webhooks received by the demo departments: {system.url('desk')}/hooks")
    console.print("Press Ctrl-C to stop.")


# Credentials `gridloop up` issues for trying the system out, one per role.
DEMO_CREDENTIALS = {
    "supervisor": ("supervisor", "SUP-0001"),  # patrols grids …001001001 and …001001002
    "hotline": ("hotline", "hotline-demo"),
    "supervision_centre": ("supervision_centre", "centre-demo"),
    "command_centre": ("command_centre", "command-demo"),
    "department_water": ("department", "WATER"),
    "department_sanitation": ("department", "SANITATION"),
    "citizen": ("public", "citizen-demo"),
    "admin": ("admin", "admin-demo"),
}


def seed_demo_credentials(mongodb_uri: str, database: str, target: Path) -> Path:
    """Issue the demo credentials (revoking the previous run's) and write them to `target`."""
    issued = asyncio.run(_issue_demo_credentials(mongodb_uri, database))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(issued, indent=2) + "\n", encoding="utf-8")
    target.chmod(0o600)
    return target


async def _issue_demo_credentials(mongodb_uri: str, database: str) -> dict[str, dict[str, str]]:
    from pymongo import AsyncMongoClient

    from gridloop.auth import CredentialStore, Role

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_uri)
    try:
        store = CredentialStore(client[database])
        issued: dict[str, dict[str, str]] = {}
        for name, (role, subject) in DEMO_CREDENTIALS.items():
            await store.credentials.update_many(
                {"subject": subject, "note": "demo"}, {"$set": {"revoked": True}}
            )
            token = await store.issue(Role(role), subject, "demo")
            issued[name] = {"role": role, "subject": subject, "token": token}
    finally:
        await client.close()
    return issued


def run_all(data_dir: Path, console: Console) -> int:
    """Start everything, wait for Ctrl-C or a failing service, stop everything."""
    data_dir = data_dir.resolve()
    servers: list[ServerProcess] = []
    env = dict(os.environ, GRIDLOOP_DATA_DIR=str(data_dir))
    shown: dict[str, str] = {}
    system: System | None = None
    try:
        if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
            servers.append(embedded.tansu(data_dir))
            env["KAFKA_BOOTSTRAP_SERVERS"] = embedded.kafka_bootstrap(servers[-1])
        if "MONGODB_URI" not in os.environ:
            if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
                # The embedded broker keeps the log in memory: a new `up` starts a new log,
                # so the last run's projections go too, or they would outlive their source.
                shutil.rmtree(data_dir / "mongodb", ignore_errors=True)
            servers.append(embedded.secantus(data_dir))
            env["MONGODB_URI"] = embedded.mongodb_uri(servers[-1])
        for server in servers:
            console.print(f"starting {server.name} on 127.0.0.1:{server.port}")
            server.start()
        shown = {"kafka": env["KAFKA_BOOTSTRAP_SERVERS"], "mongodb": env["MONGODB_URI"]}
        settings = Settings()  # of this environment, which the services inherit
        kafka = env["KAFKA_BOOTSTRAP_SERVERS"]
        asyncio.run(ensure_topics(kafka, namespace=settings.namespace))
        system = System(env, data_dir / "logs")
        database = env.get("GRIDLOOP_MONGODB_DATABASE", settings.mongodb_database)
        credentials = seed_demo_credentials(
            env["MONGODB_URI"], database, data_dir / "demo-credentials.json"
        )
        system.start()
        console.print(f"Demo credentials (bearer tokens, one per role): {credentials}")
        _print(console, system, shown)
        return _wait(system, console)
    finally:
        if system is not None:
            system.stop()
        for server in reversed(servers):
            server.stop()
        console.print("stopped")


def _wait(system: System, console: Console) -> int:
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _: stopping.append(signum))
    while not stopping:
        if failed := system.failed():
            console.print(f"[red]service(s) {', '.join(failed)} stopped; see their logs[/]")
            return 1
        with contextlib.suppress(InterruptedError):
            time.sleep(0.5)
    return 0
