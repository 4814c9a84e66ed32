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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gridloop import embedded, running
from gridloop.config import DEMO_CITY_PACK, Settings
from gridloop.embedded import Cancelled, ServerProcess
from gridloop.kafka import ensure_topics
from system.desk import pack_for_receivers
from system.frontdoor.main import door_trust

# Readers first, so that the first report finds its consumers ready.
SERVICES = (
    "projections",
    "evaluation",
    "grid",
    "dispatch",
    "notify",
    "sla",
    "intake",
    "console",
    "desk",
    "door",  # last: the one origin in front of them all
)
PORT_ENV = {
    "intake": "GRIDLOOP_INTAKE_PORT",
    "dispatch": "GRIDLOOP_DISPATCH_PORT",
    "notify": "GRIDLOOP_NOTIFY_PORT",
    "sla": "GRIDLOOP_SLA_PORT",
    "projections": "GRIDLOOP_PROJECTIONS_PORT",
    "evaluation": "GRIDLOOP_EVALUATION_PORT",
    "grid": "GRIDLOOP_GRID_PORT",
    "console": "GRIDLOOP_CONSOLE_PORT",
    "desk": "GRIDLOOP_DESK_PORT",
    "door": "GRIDLOOP_DOOR_PORT",
}


@dataclass
class System:
    """The services as child processes of this one, configured by one environment."""

    env: dict[str, str]
    logs: Path
    services: tuple[str, ...] = SERVICES
    processes: dict[str, ServerProcess] = field(default_factory=dict)
    # Variables one service gets besides the system's (the front door's trust: `door_trust`).
    own_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # How a service is started: `<launcher> run <name>` (a bench runs another checkout's
    # services with that checkout's interpreter, to compare two versions in one run).
    launcher: tuple[str, ...] = (sys.executable, "-m", "system")

    def start(self, timeout: float = 60.0, cancelled: Callable[[], bool] | None = None) -> None:
        """Start every service in turn; give up (`Cancelled`) when `cancelled()` turns true."""
        for name in self.services:
            if cancelled is not None and cancelled():
                raise Cancelled(f"before {name}")
            self.start_service(name, timeout, cancelled=cancelled)

    def start_service(
        self,
        name: str,
        timeout: float = 60.0,
        extra: dict[str, str] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        """Start `name` (with `extra` variables besides the system's: a fault to arm)."""
        self._start(name, name, self.port(name), timeout, extra or {}, cancelled)

    def start_worker(
        self,
        name: str,
        worker: str,
        port: int,
        timeout: float = 60.0,
        extra: dict[str, str] | None = None,
    ) -> None:
        """Another worker of `name` (a second member of its consumer group), on `port`,
        known here as `worker` (its process and log; `url(worker)`)."""
        own = {PORT_ENV[name]: str(port)} | (extra or {})
        self._start(name, worker, port, timeout, own, None)

    def _start(
        self,
        name: str,
        key: str,
        port: int,
        timeout: float,
        extra: dict[str, str],
        cancelled: Callable[[], bool] | None,
    ) -> None:
        argv = [*self.launcher, "run", name]
        env = self.env | self.own_env.get(name, {}) | extra
        proc = ServerProcess(key, argv, port, self.logs / f"{key}.log", env=env)
        self.processes[key] = proc
        proc.start(timeout, cancelled)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.processes.pop(name).stop()

    def port(self, name: str) -> int:
        if name not in PORT_ENV:  # a worker started by `start_worker`
            return self.processes[name].port
        default: int = Settings.model_fields[f"{name}_port"].default
        return int(self.env.get(PORT_ENV[name], default))

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    def failed(self) -> list[str]:
        return [n for n, p in self.processes.items() if p.proc and p.proc.poll() is not None]


def _print(console: Console, system: System, servers: dict[str, str]) -> None:
    table = Table(title="gridloop is up: behind the front door, each service on its own port")
    table.add_column("component")
    table.add_column("listens on", overflow="fold")
    for name, where in servers.items():
        table.add_row(name, where)
    for name in system.processes:
        table.add_row(name, system.url(name))
    console.print(table)
    console.print(f"Logs: {system.logs}")
    state = running.state_path(system.logs.parent)
    console.print(f"Where everything listens: {state} (`gridloop status`, from any directory)")
    door = system.url("door")
    console.print(
        f"Submit a report:  curl -X POST {door}/v1/reports "
        '-H "authorization: Bearer $TOKEN" '
        "-H 'content-type: application/json' -d @docs/example-report.json  (README.md)"
    )
    console.print(f"Webhooks received by the demo departments: {system.url('desk')}/hooks")
    console.print(
        f"Messages to reporters (stand-in SMS/WeChat gateway): {system.url('desk')}"
        "/gateway/messages"
    )
    console.print(
        f"[bold]gridloop is at {door}[/]: the workbench ({door}/login), the API "
        f"({door}/v1/…), Open311 ({door}/open311/v2/discovery.json), the big screen "
        f"({door}/screen)",
        soft_wrap=True,
    )
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
    """Start everything, wait for Ctrl-C, SIGTERM or a failing service, stop everything.

    Refused before anything starts: a data directory a live system runs from, a port in
    use. A signal at any moment of start-up stops what was started so far."""
    data_dir = data_dir.resolve()
    settings = Settings()  # of this environment, which the services inherit
    if refused := _refusal(data_dir, settings):
        console.print(refused, style="red", markup=False, highlight=False, soft_wrap=True)
        return 1
    with Stopping() as stop:
        return _run(data_dir, settings, console, stop)


def _refusal(data_dir: Path, settings: Settings) -> str | None:
    """Why `up` may not start here, in one line; None when it may."""
    with contextlib.suppress(running.Unavailable):
        state = running.read_state(data_dir)
        if state is not None and running.alive(state):
            return (
                f"a gridloop system already runs from {data_dir} (pid {state.pid}): stop it "
                "first, or give this one another --data-dir"
            )
    return port_problem(settings)


def port_problem(settings: Settings, services: tuple[str, ...] = SERVICES) -> str | None:
    """The first service port that is taken (or given twice), with the variable to change."""
    given: dict[int, str] = {}
    for name in services:
        port, variable = int(getattr(settings, f"{name}_port")), PORT_ENV[name]
        if port in given:
            return (
                f"port {port} is given to both {PORT_ENV[given[port]]} and {variable}: set "
                "one of them to another port"
            )
        given[port] = name
        if not embedded.port_free(settings.host, port):
            return (
                f"port {port} ({name}) is already in use on {settings.host}: stop what "
                f"listens there or set {variable} to a free port"
            )
    return None


class Stopping:
    """Ctrl-C, SIGTERM and SIGHUP recorded, not raised: start-up looks between its steps and
    while it waits for a server, so a signal at any moment stops everything started so far,
    and never breaks a step in half (a child spawned but not yet recorded). A signal this
    process was told to ignore (`nohup`, a background job) stays ignored."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Stopping:
        for sig in self.SIGNALS:
            previous = signal.getsignal(sig)
            if previous is not signal.SIG_IGN:
                self._previous[sig] = previous
                signal.signal(sig, self._record)
        return self

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def _record(self, signum: int, _: object) -> None:
        self.signum = self.signum or signum

    def requested(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        if self.signum is not None:
            raise Cancelled(signal.Signals(self.signum).name)


def _run(data_dir: Path, settings: Settings, console: Console, stop: Stopping) -> int:
    servers: list[ServerProcess] = []
    env = dict(os.environ, GRIDLOOP_DATA_DIR=str(data_dir))
    state = _state(data_dir, settings)
    system: System | None = None
    try:
        running.write_state(state)  # "starting": a second `up` here is refused
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
            server.start(cancelled=stop.requested)
        stop.check()
        shown = {"kafka": env["KAFKA_BOOTSTRAP_SERVERS"], "mongodb": env["MONGODB_URI"]}
        asyncio.run(ensure_topics(env["KAFKA_BOOTSTRAP_SERVERS"], namespace=settings.namespace))
        stop.check()
        env["GRIDLOOP_CITY_PACK"] = str(city_pack_for(settings, data_dir))
        services_trust, door_env = door_trust(env)
        env |= services_trust
        system = System(env, data_dir / "logs", own_env={"door": door_env})
        credentials = seed_demo_credentials(
            env["MONGODB_URI"], settings.mongodb_database, data_dir / "demo-credentials.json"
        )
        stop.check()
        system.start(cancelled=stop.requested)
        state = _up(state, env, system, credentials)
        running.write_state(state)
        console.print(f"Demo credentials (bearer tokens, one per role): {credentials}")
        _print(console, system, shown)
        return wait_for_stop(system, console, stop)
    except Cancelled:
        console.print(f"start-up interrupted ({_name(stop)}): stopping what was started")
        return 128 + (stop.signum or 0)
    except (RuntimeError, TimeoutError) as exc:  # a server or a service that did not start
        console.print(f"[red]start-up failed:[/] {exc}", soft_wrap=True)
        console.print(f"Logs: {data_dir / 'logs'}")
        return 1
    finally:
        if system is not None:
            system.stop()
        for server in reversed(servers):
            server.stop()
        running.remove_state(data_dir, state.pid)
        console.print("stopped")


def city_pack_for(settings: Settings, data_dir: Path) -> Path:
    """The pack the services load: the demo pack with its webhooks at this system's desk
    (its file says 127.0.0.1:8009, whatever GRIDLOOP_DESK_PORT is), another pack as it is."""
    if settings.city_pack.resolve() != DEMO_CITY_PACK.resolve():
        return settings.city_pack.resolve()
    hooks = f"http://127.0.0.1:{settings.desk_port}/hooks"
    return pack_for_receivers(DEMO_CITY_PACK, data_dir / "citypack", hooks)


def _state(data_dir: Path, settings: Settings) -> running.SystemState:
    return running.SystemState(
        status="starting",
        pid=os.getpid(),
        process_start=running.process_start(os.getpid()),
        started_at=datetime.now(UTC),
        data_dir=data_dir,
        city_pack=settings.city_pack.resolve(),
        mongodb_database=settings.mongodb_database,
        namespace=settings.namespace,
        host=settings.host,
        logs=data_dir / "logs",
    )


def _up(
    state: running.SystemState, env: dict[str, str], system: System, credentials: Path
) -> running.SystemState:
    return state.model_copy(
        update={
            "status": "up",
            "kafka_bootstrap_servers": env["KAFKA_BOOTSTRAP_SERVERS"],
            "mongodb_uri": env["MONGODB_URI"],
            "city_pack": Path(env["GRIDLOOP_CITY_PACK"]),
            "address": system.url("door") if "door" in system.processes else None,
            "services": {name: system.url(name) for name in system.processes},
            "demo_credentials": credentials,
        }
    )


def _name(stop: Stopping) -> str:
    return signal.Signals(stop.signum).name if stop.signum else "a signal"


def wait_for_stop(system: System, console: Console, stop: Stopping) -> int:
    """Until a signal (0) or a service that stops by itself (1, said on `console`)."""
    while not stop.requested():
        if failed := system.failed():
            console.print(f"[red]service(s) {', '.join(failed)} stopped; see their logs[/]")
            return 1
        with contextlib.suppress(InterruptedError):
            time.sleep(0.5)
    return 0
