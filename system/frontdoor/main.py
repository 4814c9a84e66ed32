"""`gridloop run door`: the embedded front door on `GRIDLOOP_DOOR_PORT`, in front of the
services of this host (each on its own port, as `gridloop up` starts them)."""

from __future__ import annotations

import socket

import uvicorn

from gridloop.config import Settings
from system.frontdoor.proxy import FrontDoor, Upstreams
from system.frontdoor.table import ROUTED, table

# The loopback address the door connects to the services from, so that they can trust
# the door's `X-Forwarded-For` without trusting every caller on 127.0.0.1 (docs/architecture.md).
DOOR_SOURCE = "127.0.0.2"


def upstreams(settings: Settings) -> Upstreams:
    return Upstreams(
        {name: f"http://127.0.0.1:{getattr(settings, f'{name}_port')}" for name in ROUTED}
    )


def source_usable(address: str = DOOR_SOURCE) -> bool:
    """Whether this host lets a process connect from `address` (Linux routes all of
    127.0.0.0/8 to loopback; macOS only 127.0.0.1 unless configured)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def door_trust(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """What `gridloop up` adds to the services' environment and to the door's: the door
    connects from `DOOR_SOURCE`, which the services (and they alone) trust as a proxy.
    Nothing where that address is not usable: the services then see the door as the
    caller, and callers through the door share its one address's limits."""
    if not source_usable():
        return {}, {}
    own = env.get("GRIDLOOP_TRUSTED_PROXIES", "")
    trusted = ",".join(p for p in (own, f"{DOOR_SOURCE}/32") if p)
    door = {"GRIDLOOP_DOOR_SOURCE": DOOR_SOURCE, "GRIDLOOP_TRUSTED_PROXIES": own}
    return {"GRIDLOOP_TRUSTED_PROXIES": trusted}, door


def app(settings: Settings) -> FrontDoor:
    return FrontDoor(
        table(), upstreams(settings), settings.trusted_proxies, settings.door_source or None
    )


async def run(settings: Settings) -> None:
    config = uvicorn.Config(
        app(settings),
        host=settings.host,
        port=settings.door_port,
        proxy_headers=False,  # the door believes X-Forwarded-For by its own rule alone
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,  # open live streams never end by themselves
    )
    await uvicorn.Server(config).serve()
