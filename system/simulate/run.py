"""`gridloop simulate`: put the pieces together — the system (its own or a running one), the
credentials, the built-in receivers, the driver and the display."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pydantic import TypeAdapter
from rich.console import Console

from gridloop.citypack import CityPack, load_city_pack
from schemas import clock
from system.desk import GATEWAY_DIR, pack_for_receivers
from system.gateway import Gateway
from system.simulate.driver import Credentials, Driver
from system.simulate.gridwork import GridPeople
from system.simulate.profile import Profile, Scenario
from system.simulate.receivers import Receivers, listening_socket, serving
from system.simulate.summary import Display, Tally
from system.simulate.system import (
    DATABASE,
    OwnSystem,
    default_start,
    head_start,
    issue_credentials,
    own_system,
)


@dataclass(frozen=True)
class Options:
    rate: float = 2.0  # reports a real second
    duration: float = 60.0  # real seconds of reporting
    speed: float = 240.0  # simulated seconds a real second
    drain: float = 60.0  # real seconds at most for the open cases to go round afterwards
    start: datetime | None = None  # simulated start (own system): default next Monday 08:00
    profile: Profile = field(default_factory=Profile)


@dataclass(frozen=True)
class Target:
    """Where the system listens, and what the simulation knows of it."""

    pack: CityPack
    intake: str
    dispatch: str
    credentials: Credentials
    urls: dict[str, str]  # every service's base URL
    start: datetime  # simulated time at the start
    mongodb: tuple[str, str]  # the system's database: URI and name
    now: Callable[[], datetime] = clock.now  # the system's clock (own system: the simulated one)


# What to do once the simulation ended, while the system still runs (the demo's scores and
# report).
Then = Callable[[Target, Tally], None]
# What to do after `then`, with the system itself (the demo keeps it up to be looked at).
Hold = Callable[[OwnSystem, Target], None]


async def drive(
    target: Target,
    sock: socket.socket,
    options: Options,
    console: Console | None,
    gateway: Path | None = None,
) -> Tally:
    """Run the driver against `target`, with the receivers serving on `sock` (and the
    stand-in message gateway, recording into the directory `gateway`)."""
    scenario = Scenario(target.pack, options.profile)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    timeout = httpx.Timeout(30.0)
    grid_url = target.urls.get("grid", target.intake)  # no grid service: no grid work
    async with (
        httpx.AsyncClient(base_url=target.intake, limits=limits, timeout=timeout) as intake,
        httpx.AsyncClient(base_url=target.dispatch, limits=limits, timeout=timeout) as dispatch,
        httpx.AsyncClient(base_url=grid_url, limits=limits, timeout=timeout) as grid,
    ):
        driver = Driver(
            scenario, intake, dispatch, target.credentials, options.speed, now=target.now
        )
        receivers = Receivers(target.pack, driver.deliver, Gateway(target.pack, gateway))
        async with serving(receivers.app(), sock):
            display = Display(console, driver.tally, round(options.rate * options.duration))
            with display.live():
                if "grid" in target.urls:
                    GridPeople(driver, grid).start()
                tally = await driver.run(options.rate, options.duration, options.drain, display)
        tally.errors += receivers.refused
        return tally


def simulate_own(
    pack_dir: Path,
    data_dir: Path,
    options: Options,
    console: Console | None,
    then: Then | None = None,
    hold: Hold | None = None,
) -> Tally:
    """Start an embedded system on a compressed clock and simulate against it."""
    sock = listening_socket()
    port = sock.getsockname()[1]
    hooks = f"http://127.0.0.1:{port}/hooks"
    pack_dir = pack_for_receivers(pack_dir, data_dir / "citypack", hooks)
    loading = time.monotonic()
    pack = load_city_pack(pack_dir)
    head = head_start(time.monotonic() - loading)
    start = options.start or default_start(datetime.now(UTC), pack.city.timezone)
    if console:
        console.print(
            f"starting the system: simulated time from {start.isoformat()}, ×{options.speed:g}"
        )
    with own_system(pack_dir, data_dir, start, options.speed, head) as own:
        urls = {name: own.system.url(name) for name in own.system.services}

        mongodb = (own.env["MONGODB_URI"], DATABASE)

        async def session() -> tuple[Target, Tally]:
            credentials = await issue_credentials(*mongodb, pack, options.profile)
            # The reports begin when the simulated clock reads the start (or at once, when
            # the services took longer than their head start).
            await asyncio.sleep(max(0.0, own.compression.epoch - time.time()))
            if console:
                now = own.compression.now().astimezone(start.tzinfo)
                console.print(f"reporting from simulated {now:%Y-%m-%d %H:%M %Z}")
            target = Target(
                pack,
                urls["intake"],
                urls["dispatch"],
                credentials,
                urls,
                start,
                mongodb,
                own.compression.now,
            )
            return target, await drive(target, sock, options, console, data_dir / GATEWAY_DIR)

        try:
            target, tally = asyncio.run(session())
        finally:
            sock.close()
        if then is not None:
            then(target, tally)
        if hold is not None:
            hold(own, target)
        return tally


def simulate_running(
    pack: CityPack,
    urls: dict[str, str],
    receivers_port: int,
    mongodb: tuple[str, str],
    options: Options,
    console: Console | None,
) -> Tally:
    """Simulate against a system already running (its clock, its pack): the receivers
    listen on `receivers_port`, where the pack's webhooks must point; credentials are
    issued in its database (`mongodb`: URI and database name)."""
    sock = listening_socket(port=receivers_port)

    async def session() -> Tally:
        credentials = await issue_credentials(mongodb[0], mongodb[1], pack, options.profile)
        start = datetime.now(UTC)  # informational: the running system keeps its own clock
        target = Target(pack, urls["intake"], urls["dispatch"], credentials, urls, start, mongodb)
        return await drive(target, sock, options, console)

    try:
        return asyncio.run(session())
    finally:
        sock.close()


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in `20s`, `5m`, `1.5h`, `1d`, `90` (seconds) or ISO 8601 (`PT20S`)."""
    text = text.strip()
    try:
        if text[:1].upper() == "P":
            seconds = TypeAdapter(timedelta).validate_python(text).total_seconds()
        elif text[-1:].lower() in _UNITS:
            seconds = float(text[:-1]) * _UNITS[text[-1].lower()]
        else:
            seconds = float(text)
    except ValueError as exc:
        raise ValueError(f"not a duration: {text!r} (e.g. 20s, 5m, 1h, PT20S)") from exc
    if not seconds > 0:
        raise ValueError(f"a duration must be positive, not {text!r}")
    return seconds
