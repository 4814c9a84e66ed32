"""The system a simulation drives: its own embedded one (broker, database, every service of
`gridloop up` but the desk, whose place the built-in receivers take), on a compressed clock;
or one already running, named by URLs. And the simulated people's credentials.

Time: the simulator starts its system with `schemas.clock.compress(start, speed)` in the
services' environment, so event times, deadlines, SLA ticks and breaches all live in
simulated time, and the city pack's time limits keep their real values (a 4-hour limit is 4
simulated hours: one minute of real time at speed 240). The driver sleeps every simulated
delay divided by the same speed. A running system brings its own clock: `--speed` must then
match the speed it was started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

from pymongo import AsyncMongoClient

from gridloop import embedded
from gridloop.auth import CredentialStore, Role
from gridloop.citypack import CityPack
from gridloop.citypack.disputes import office_code
from gridloop.config import Settings
from gridloop.embedded import ServerProcess
from gridloop.kafka import ensure_topics
from gridloop.mongo import Document
from schemas.clock import Compression
from system.frontdoor.main import door_trust
from system.simulate.driver import Credentials
from system.simulate.profile import SUPERVISOR_OF_NO_GRID, Profile, Scenario
from system.up import PORT_ENV, SERVICES, System

DATABASE = "gridloop"
# Who the simulated people are: one credential each (the subject is what events record).
HOTLINE, CENTRE, COMMAND, READER = "hotline-sim", "centre-sim", "command-sim", "reader-sim"
LEAD = "lead-sim"


def default_start(now: datetime, zone: str = "Asia/Shanghai") -> datetime:
    """The next Monday 08:00 in the city's time: a working day from its first hour."""
    local = now.astimezone(ZoneInfo(zone))
    days = (7 - local.weekday()) % 7 or 7
    monday = (local + timedelta(days=days)).date()
    return datetime.combine(monday, clock_time(8, 0), ZoneInfo(zone))


@dataclass
class OwnSystem:
    """A running embedded system on a compressed clock."""

    system: System
    servers: list[ServerProcess]
    compression: Compression

    @property
    def env(self) -> dict[str, str]:
        return self.system.env

    def stop(self) -> None:
        self.system.stop()
        for server in reversed(self.servers):
            server.stop()


def _door_port(chosen: dict[str, str]) -> str:
    """GRIDLOOP_DOOR_PORT's own when it is free, else the one `free_ports` chose."""
    settings = Settings()
    port = settings.door_port
    return str(port) if embedded.port_free(settings.host, port) else chosen[PORT_ENV["door"]]


def at_real_speed(own: OwnSystem) -> None:
    """Go on from the simulated now at the speed of a wall clock: the services restarted on
    a clock that reads the simulated time it reached and then runs as real time does (the
    broker and the database, with the simulated days in them, stay as they are)."""
    reached = own.compression.now()
    own.system.stop()
    own.compression = Compression(reached, time.time(), 1.0)
    own.system.env.update(own.compression.environment())
    _start_together(own.system)


def head_start(pack_load_seconds: float) -> float:
    """Real seconds the services are given to start before the simulated clock reads the
    start: each loads the city pack, side by side on this machine's cores."""
    services = len(SERVICES)
    return 5.0 + 1.5 * pack_load_seconds * services / min(services, os.cpu_count() or 1)


@contextlib.contextmanager
def own_system(
    pack_dir: Path, data_dir: Path, start: datetime, speed: float, head: float = 5.0
) -> Iterator[OwnSystem]:
    """Broker, database and the services (free ports), on a clock that runs `speed` times
    faster than real time and reads `start` `head` real seconds from now, when the services
    should be listening (before, it reads earlier times, at which nothing happens)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(data_dir / "mongodb", ignore_errors=True)  # a new log: new projections
    servers = [embedded.tansu(data_dir), embedded.secantus(data_dir)]
    running: OwnSystem | None = None
    try:
        for server in servers:
            server.start()
        kafka, mongodb = embedded.kafka_bootstrap(servers[0]), embedded.mongodb_uri(servers[1])
        asyncio.run(ensure_topics(kafka, namespace=Settings().namespace))  # as the services
        compression = Compression(start.astimezone(UTC), time.time() + head, speed)
        ports = embedded.free_ports(PORT_ENV.values())
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "MONGODB_URI": mongodb,
            "GRIDLOOP_MONGODB_DATABASE": DATABASE,
            "GRIDLOOP_CITY_PACK": str(pack_dir),
            "GRIDLOOP_DATA_DIR": str(data_dir),
            # The simulated citizens all report from this machine's address.
            "GRIDLOOP_PUBLIC_RATE_LIMIT": "1000000/minute",
            "GRIDLOOP_WEBHOOK_POLL_SECONDS": "0.1",
            **ports,
            # The front door where people expect it (GRIDLOOP_DOOR_PORT), when it is free.
            PORT_ENV["door"]: _door_port(ports),
            **compression.environment(),
        }
        services = tuple(s for s in SERVICES if s != "desk")  # the receivers take its place
        services_trust, door_env = door_trust(env)
        env |= services_trust
        system = System(env, data_dir / "logs", services, own_env={"door": door_env})
        running = OwnSystem(system, servers, compression)
        _start_together(running.system)
        yield running
    finally:
        if running is not None:
            running.stop()
        else:
            for server in reversed(servers):
                server.stop()


async def issue_credentials(
    mongodb_uri: str, database: str, pack: CityPack, profile: Profile | None = None
) -> Credentials:
    """A credential for every simulated person, issued in the system's own database (as
    `gridloop credentials issue` does): the grid managers and tier offices only of the
    grids whose people are out today (a district has thousands)."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb_uri)
    try:
        store = CredentialStore(client[database])
        grid_staff, tiers = await _grid_people(store, Scenario(pack, profile or Profile()))
        supervisors = sorted({g.supervisor for g in pack.grids if g.supervisor})
        by_supervisor = {
            s: await store.issue(Role.supervisor, s, "simulator")
            for s in [*supervisors, SUPERVISOR_OF_NO_GRID]
        }
        departments = {
            code: await store.issue(Role.department, code, "simulator")
            for code in sorted(pack.departments)
        }
        return Credentials(
            supervisors=by_supervisor,
            hotline=await store.issue(Role.hotline, HOTLINE, "simulator"),
            centre=await store.issue(Role.supervision_centre, CENTRE, "simulator"),
            command=await store.issue(Role.command_centre, COMMAND, "simulator"),
            lead=await store.issue(Role.shift_lead, LEAD, "simulator"),
            departments=departments,
            reader=await store.issue(Role.admin, READER, "simulator"),
            grid_staff=grid_staff,
            tiers=tiers,
        )
    finally:
        await client.close()


async def _grid_people(
    store: CredentialStore, scenario: Scenario
) -> tuple[dict[str, str], dict[str, str]]:
    """Tokens of the grid managers out today, and of their communities' and streets'
    tier offices (who mediate the disputes their visits raise)."""
    grids = scenario.field_grids()
    managers = sorted({m for g in grids if (m := scenario.grid_manager(g))})
    offices = sorted({office_code(tier, g.code) for g in grids for tier in ("community", "street")})
    grid_staff = {m: await store.issue(Role.grid_staff, m, "simulator") for m in managers}
    tiers = {o: await store.issue(Role.tier_office, o, "simulator") for o in offices}
    return grid_staff, tiers


def _start_together(system: System, timeout: float = 180.0) -> None:
    """Start the services side by side: each loads the city pack first (a generated
    district takes seconds), and no report is sent before all of them listen."""
    with ThreadPoolExecutor(len(system.services)) as pool:
        started = [pool.submit(system.start_service, name, timeout) for name in system.services]
        for future in started:
            future.result()
