"""The embedded front door: a small ASGI reverse proxy that streams both ways.

A request is matched in the route table (`table.py`) and relayed to its service over
HTTP/1.1 with httpx: the body as it arrives, the answer chunk by chunk as the service
writes it, so the workbench's `/live` event stream reaches the browser as each event is
sent (nothing is buffered), and ends when the browser goes away.

Who the caller is: the door sets `X-Forwarded-For` to the caller's address itself. A
caller's own `X-Forwarded-For` is believed only when the caller is a trusted proxy
(`GRIDLOOP_TRUSTED_PROXIES`, by the rule every service applies: `gridloop.http.
client_address`), and then only the hop that proxy saw; otherwise it is dropped. The
services believe the door's header because `gridloop up` lists the door's own address
among *their* trusted proxies, and the door connects to them from that address
(`GRIDLOOP_DOOR_SOURCE`, docs/architecture.md, "The front door").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import httpx
from starlette.types import Message, Receive, Scope, Send

from gridloop.http import Network, client_address, networks
from system.frontdoor.table import Match, RouteTable

# Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the door sets itself.
HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
OWN = frozenset({"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"})


@dataclass(frozen=True)
class Upstreams:
    """Each service's base URL (`http://127.0.0.1:8000`)."""

    urls: Mapping[str, str]

    def url(self, service: str, path: str, query: bytes) -> str:
        base = self.urls[service].rstrip("/")
        return base + path + (("?" + query.decode("latin-1")) if query else "")


def request_headers(scope: Scope, proxies: list[Network]) -> list[tuple[bytes, bytes]]:
    """The headers sent on to the service: the caller's, less hop-by-hop ones and any
    forwarding header, plus the door's own `X-Forwarded-For`, `-Proto` and `-Host`."""
    kept = [
        (k, v) for k, v in scope.get("headers", []) if k.lower().decode("latin-1") not in HOP | OWN
    ]
    host = next((v for k, v in scope.get("headers", []) if k.lower() == b"host"), b"")
    kept.append((b"x-forwarded-for", client_address(scope, proxies).encode("latin-1")))
    kept.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode("latin-1")))
    if host:
        kept.append((b"x-forwarded-host", host))
    return kept


def response_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in response.headers.raw if k.lower().decode("latin-1") not in HOP]


class FrontDoor:
    """The ASGI app of the door."""

    def __init__(
        self,
        routes: RouteTable,
        upstreams: Upstreams,
        trusted_proxies: str = "",
        source: str | None = None,
    ) -> None:
        self.routes, self.upstreams = routes, upstreams
        self.proxies = networks(trusted_proxies)
        self.source = source  # the address the door connects to the services from
        self._http: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._http is None:
            transport = httpx.AsyncHTTPTransport(
                local_address=self.source,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            )
            # No read timeout: a live stream waits for news as long as the page is open.
            timeout = httpx.Timeout(10.0, read=None)
            self._http = httpx.AsyncClient(transport=transport, timeout=timeout)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no WebSockets behind the door (the workbench's news is SSE)
        if scope["path"] == "/healthz":
            await _answer(send, 200, {"status": "ok"})
            return
        match = self.routes.find(scope["method"], scope["path"])
        if match is None:
            await _answer(
                send, 404, _refusal(("path",), "no service answers this path", "not_found")
            )
            return
        url = self.upstreams.url(match.route.service, _raw(scope, match), scope["query_string"])
        await self._relay(scope, receive, send, url)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _relay(self, scope: Scope, receive: Receive, send: Send, url: str) -> None:
        body = _Body(receive)
        headers = request_headers(scope, self.proxies)
        # A request without a body is sent without one (not as an empty chunked body).
        sized = {k.lower() for k, _ in scope["headers"]} & {b"content-length", b"transfer-encoding"}
        request = self.client().build_request(
            scope["method"], url, headers=headers, content=body if sized else None
        )
        try:
            response = await self.client().send(request, stream=True)
        except httpx.TransportError:
            await _answer(
                send, 502, _refusal(("service",), "the service does not answer", "bad_gateway")
            )
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": response_headers(response),
                }
            )
            await _stream(response, send, body)
        finally:
            await response.aclose()


class _Body:
    """The caller's body as it arrives, then a watch for the caller going away."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.done = False
        self.gone = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self.done:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.done = True
                self.gone.set()
                return
            self.done = not message.get("more_body", False)
            if chunk := message.get("body", b""):
                yield chunk

    async def disconnected(self) -> None:
        """Return once the caller has gone (its body read first, if nobody read it)."""
        async for _ in self:
            pass
        while not self.gone.is_set():
            message: Message = await self.receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
        await self.gone.wait()


async def _stream(response: httpx.Response, send: Send, body: _Body) -> None:
    """Each chunk to the caller as it comes; stop when the service ends or the caller goes."""

    async def relay() -> None:
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    relaying = asyncio.create_task(relay())
    watching = asyncio.create_task(body.disconnected())
    try:
        await asyncio.wait({relaying, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (relaying, watching):
            task.cancel()
        for task in (relaying, watching):
            with contextlib.suppress(asyncio.CancelledError, OSError, httpx.HTTPError):
                await task
    failed = relaying.exception() if relaying.done() and not relaying.cancelled() else None
    if failed is not None and not isinstance(failed, OSError | httpx.HTTPError):
        raise failed  # the door's own fault; a caller or a service gone is no fault


def _raw(scope: Scope, match: Match) -> str:
    """The path at the service, as the caller encoded it."""
    raw = scope.get("raw_path")
    strip = match.route.strip
    if isinstance(raw, bytes) and raw:
        path = raw.decode("latin-1")
        return path[len(strip) :] if strip and path.startswith(strip) else path
    return match.upstream


def _refusal(loc: tuple[str, ...], msg: str, kind: str) -> dict[str, object]:
    return {"detail": [{"loc": list(loc), "msg": msg, "type": kind}]}


async def _answer(send: Send, status: int, body: dict[str, object]) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
