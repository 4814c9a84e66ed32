"""The embedded front door's proxy (system/frontdoor/proxy.py) on real sockets, in front of a
small service: who the service believes the caller is, a live stream relayed as it is
written (the second event is not even written until the first came through), a large body
streamed on, and the service's stream closed when the caller goes away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.types import ASGIApp

from gridloop.embedded import free_port
from gridloop.http import client_address, networks
from system.frontdoor.main import DOOR_SOURCE, source_usable
from system.frontdoor.proxy import FrontDoor, Upstreams
from system.frontdoor.table import API, DoorRoute, RouteTable
from tests.helpers import serving

pytestmark = pytest.mark.skipif(not source_usable(), reason=f"{DOOR_SOURCE} cannot be bound")


class Service:
    """Trusts the door's address alone, as `gridloop up` configures the services."""

    def __init__(self) -> None:
        self.next_event = asyncio.Event()
        self.stream_closed = asyncio.Event()

    def app(self) -> FastAPI:
        app = FastAPI()
        trusted = networks(f"{DOOR_SOURCE}/32")

        @app.get("/whoami")
        async def whoami(request: Request) -> dict[str, str]:
            return {"client": client_address(request.scope, trusted)}

        @app.post("/echo")
        async def echo(request: Request) -> dict[str, int]:
            return {"received": len(await request.body())}

        @app.get("/live")
        async def live() -> StreamingResponse:
            async def news() -> AsyncIterator[str]:
                try:
                    yield "event: changed\ndata: one\n\n"
                    await self.next_event.wait()
                    yield "event: changed\ndata: two\n\n"
                    await asyncio.Event().wait()  # a stream that never ends by itself
                finally:
                    self.stream_closed.set()

            return StreamingResponse(news(), media_type="text/event-stream")

        return app


@contextlib.asynccontextmanager
async def serving_asgi(app: ASGIApp, port: int) -> AsyncIterator[None]:
    config = uvicorn.Config(app, "127.0.0.1", port, log_level="error", proxy_headers=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = server.force_exit = True
        await task


@dataclass
class Doors:
    at_door: str  # a door that trusts no proxy
    behind_balancer: str  # a door that trusts 127.0.0.1 as a load balancer in front of it
    at_service: str
    service: Service


@pytest.fixture
async def doors() -> AsyncIterator[Doors]:
    service, service_port, door_port, other_port = Service(), *(free_port() for _ in range(3))
    routes = RouteTable(
        [
            DoorRoute("svc", frozenset({"GET"}), API + "/whoami", strip=API),
            DoorRoute("svc", frozenset({"POST"}), API + "/echo", strip=API),
            DoorRoute("svc", frozenset({"GET"}), "/live"),
        ]
    )
    upstreams = Upstreams({"svc": f"http://127.0.0.1:{service_port}"})
    front = FrontDoor(routes, upstreams, source=DOOR_SOURCE)
    behind = FrontDoor(routes, upstreams, trusted_proxies="127.0.0.1/32", source=DOOR_SOURCE)
    async with (
        serving(service.app(), service_port),
        serving_asgi(front, door_port),
        serving_asgi(behind, other_port),
    ):
        local = "http://127.0.0.1:{}".format
        yield Doors(local(door_port), local(other_port), local(service_port), service)


async def test_the_service_believes_the_door_and_not_a_forged_header(doors: Doors) -> None:
    forged = {"X-Forwarded-For": "203.0.113.99"}
    async with httpx.AsyncClient() as http:
        through = await http.get(f"{doors.at_door}/v1/whoami", headers=forged)
        balanced = await http.get(f"{doors.behind_balancer}/v1/whoami", headers=forged)
        direct = await http.get(f"{doors.at_service}/whoami", headers=forged)
        unknown = await http.get(f"{doors.at_door}/v1/nowhere")
    # Through the door: the door's word (the address it saw), not the caller's header.
    assert through.json() == {"client": "127.0.0.1"}
    # A door behind a balancer it trusts passes the balancer's word on, and the service
    # believes it because it came from the door's own address.
    assert balanced.json() == {"client": "203.0.113.99"}
    # Straight to the service from the host: the header is no one's word.
    assert direct.json() == {"client": "127.0.0.1"}
    assert unknown.status_code == 404
    assert unknown.json()["detail"][0]["type"] == "not_found"


async def test_a_large_body_is_streamed_on(doors: Doors) -> None:
    body = b"x" * (3 * 1024 * 1024)
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{doors.at_door}/v1/echo", content=body)
    assert answer.json() == {"received": len(body)}


async def test_a_live_stream_is_relayed_as_written_and_closed_with_the_caller(
    doors: Doors,
) -> None:
    service = doors.service
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as http,
        http.stream("GET", f"{doors.at_door}/live") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert [await anext(lines), await anext(lines)] == ["event: changed", "data: one"]
        service.next_event.set()  # only now is the second event written
        while (line := await anext(lines)) != "data: two":
            assert line in ("", "event: changed")
    # The caller went away: the door let go of the service's stream.
    await asyncio.wait_for(service.stream_closed.wait(), 10)
