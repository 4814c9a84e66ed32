"""The departments' webhook receivers, built into the simulator: an HTTP server in the
simulator's own event loop that takes every department's webhooks, verifies each signature
with `standardwebhooks` and the department's secret (as `system/desk.py` does), drops
repeated deliveries by `webhook-id`, and hands each message to the simulated department.
It answers at once; the department acts later, after its simulated delay. Reporters'
messages go to the stand-in gateway served beside them (`system/gateway.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from standardwebhooks import Webhook, WebhookVerificationError

from gridloop.citypack import CityPack
from system.gateway import Gateway

# (department, message): hand the message to the department, which starts its work as a
# task of its own (the receiver answers at once).
OnMessage = Callable[[str, dict[str, Any]], None]


class Receivers:
    """The departments' receivers, and beside them the stand-in message gateway that takes
    the simulated reporters' SMS and WeChat messages (`system/gateway.py`)."""

    def __init__(
        self, pack: CityPack, on_message: OnMessage, gateway: Gateway | None = None
    ) -> None:
        self.pack, self.on_message = pack, on_message
        self.gateway = gateway or Gateway(pack)
        self.seen: set[str] = set()
        self.refused = 0  # deliveries with a bad signature or for no known department

    def app(self) -> FastAPI:
        app = FastAPI(title="gridloop simulator: the departments' webhook receivers")
        self.gateway.add_routes(app)

        @app.post("/hooks/{department}", status_code=204)
        async def receive(department: str, request: Request) -> Response:
            dept = self.pack.departments.get(department)
            if dept is None or dept.webhook is None:
                self.refused += 1
                raise HTTPException(404, f"no department {department} with a webhook")
            body = await request.body()
            try:
                Webhook(dept.webhook.secret).verify(body, dict(request.headers))
            except WebhookVerificationError as exc:
                self.refused += 1
                raise HTTPException(401, f"bad signature: {exc}") from exc
            webhook_id = request.headers["webhook-id"]
            if webhook_id not in self.seen:  # else a retry of a delivery we already have
                self.seen.add(webhook_id)
                self.on_message(department, json.loads(body))
            return Response(status_code=204)

        return app


def listening_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound, listening socket: its port is known before the city pack names it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    return sock


@contextlib.asynccontextmanager
async def serving(app: FastAPI, sock: socket.socket) -> AsyncIterator[None]:
    """Serve `app` on `sock` in this event loop until the block ends."""
    config = uvicorn.Config(app, log_level="critical", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # it failed to start: say why
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = server.force_exit = True
        await task
