"""The HTTP door of every service: `harden(app, service, limits)`, installed beside the error
handlers by intake, dispatch and the notify admin API.

- Body size: a body is counted as it streams in. A Content-Length is believed only when it
  already says too much; a chunked or lying body is cut at the limit. Either way: 413.
- Rate limits: callers without a staff credential (no token, an unknown one, or a citizen's
  `public` credential) share a moving window per client address (`public_rate_limit`) →
  429 with `Retry-After`. Staff are not limited by it: they are few, each holds a credential
  of their own that can be revoked, and all they do is audited; a hotline floor or a
  supervisor's batch must never be refused by a limit meant for the internet.
  `X-Forwarded-For` is believed only when the peer is a trusted proxy (none by default),
  here and nowhere else: uvicorn's own proxy-header handling is off
  (`gridloop.runtime.server_config`). A request that carries many (a batch of reports)
  counts as many: its route calls `charge` with the rest.
- Refusals: every 401 and 403 is written to the audit trail (`gridloop/audit.py`).

`/healthz` and `/metrics` pass untouched: orchestrators and Prometheus call them often.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from pymongo.errors import PyMongoError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridloop.audit import AuditTrail, refusal
from gridloop.auth import TOKEN_PREFIX, CredentialStore, Principal, Role
from gridloop.config import Settings
from gridloop.people import SESSION_PREFIX

log = logging.getLogger(__name__)
OPS_PATHS = frozenset({"/healthz", "/metrics"})
WINDOW = "gridloop.public_window"  # the scope key of a rate-limited caller's window
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class HttpLimits:
    public_rate: str = str(_default("public_rate_limit"))
    trusted_proxies: str = str(_default("trusted_proxies"))
    max_body: int = int(_default("max_body_bytes"))

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(settings.public_rate_limit, settings.trusted_proxies, settings.max_body_bytes)


def harden(
    app: FastAPI, service: str, limits: HttpLimits, larger: Mapping[str, int] | None = None
) -> AuditTrail:
    """Install the door on `app` (whose `state.credentials` is set); `larger` gives paths a
    body limit of their own (uploads). The audit trail lives beside the credentials."""
    credentials: CredentialStore = app.state.credentials
    trail = AuditTrail(credentials.credentials.database)
    app.state.audit = trail
    app.add_middleware(BodyLimit, limit=limits.max_body, larger=dict(larger or {}))
    # Added last, so outermost: the limit refuses before any body is read.
    app.add_middleware(Door, service=service, limits=limits, owner=app, trail=trail)
    _document_refusals(app)
    return trail


def _error(loc: Sequence[str], msg: str, kind: str) -> bytes:
    return json.dumps({"detail": [{"loc": list(loc), "msg": msg, "type": kind}]}).encode()


async def _answer(send: Send, status: int, body: bytes, headers: Sequence[tuple[str, str]]) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    values = [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name]
    return ",".join(values) if values else None


class _TooLarge(Exception):
    """Raised into the app from `receive`: the body went past the limit."""


class BodyLimit:
    """413 for a body larger than the limit of its path, counted as it streams."""

    def __init__(self, app: ASGIApp, limit: int, larger: dict[str, int]) -> None:
        self.app, self.limit, self.larger = app, limit, larger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.limit)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await self.refuse(send, limit)
            return
        received, over, started = 0, False, False

        async def counting() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _TooLarge
            return message

        async def answering(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to a body cut short is replaced by the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting, answering)
        except Exception:
            # Whatever the app made of the cut (FastAPI turns it into a 400), the cause is
            # the size; any other failure is the app's own.
            if not over:
                raise
        if over and not started:
            await self.refuse(send, limit)

    @staticmethod
    async def refuse(send: Send, limit: int) -> None:
        body = _error(("body",), f"the request body is larger than {limit} bytes", "too_large")
        await _answer(send, 413, body, [("connection", "close")])


def networks(spec: str) -> list[Network]:
    """`GRIDLOOP_TRUSTED_PROXIES`' comma-separated addresses and networks."""
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()
    ]


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(scope: Scope, proxies: Sequence[Network]) -> str:
    """The caller's address: the peer, or, behind trusted proxies, the nearest hop of
    `X-Forwarded-For` that is not one of them (the hops further left are the client's word)."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in (_header(scope, b"x-forwarded-for") or "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


class Door:
    """Rate limits for everyone but staff; the audit of every 401 and 403."""

    def __init__(
        self, app: ASGIApp, service: str, limits: HttpLimits, owner: FastAPI, trail: AuditTrail
    ) -> None:
        self.app, self.service, self.owner, self.trail = app, service, owner, trail
        self.rates: list[RateLimitItem] = parse_many(limits.public_rate)
        self.proxies = networks(limits.trusted_proxies)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPS_PATHS:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        who = await self.principal(token)
        if who is None or who.role is Role.public:
            window = Window(self, client_address(scope, self.proxies))
            if wait := await window.hit():
                await _answer(send, 429, *_too_many(wait))
                return
            scope[WINDOW] = window  # for a route whose request counts as several
        status = 0

        async def watching(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watching)
        if status in (401, 403):
            await self.record(scope, who, token, status)

    async def principal(self, token: str | None) -> Principal | None:
        # A person's session (`gls_`) is a credential as a machine token is: staff signed
        # in to the workbench are not limited as the public.
        if token is None or not token.startswith((TOKEN_PREFIX, SESSION_PREFIX)):
            return None  # not a gridloop token: no need to ask the database
        credentials: CredentialStore = self.owner.state.credentials
        try:
            return await credentials.principal(token)
        except PyMongoError:
            return None  # counted as the public; the route will fail on its own

    async def limited(self, address: str, cost: int = 1) -> int | None:
        """Seconds to wait if `address` has not `cost` requests left in its window, else
        None (and `cost` hits)."""
        for rate in self.rates:
            if not await self.limiter.hit(rate, address, cost=cost):
                stats = await self.limiter.get_window_stats(rate, address)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None

    async def record(
        self, scope: Scope, who: Principal | None, token: str | None, status: int
    ) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or scope["path"][:200]
        case_id = (scope.get("path_params") or {}).get("case_id")
        if status == 403:
            reason = "forbidden"
        else:
            reason = "no token" if token is None else "unknown or revoked token"
        record = refusal(
            self.service, f"{scope['method']} {template}", case_id, who, status, reason
        )
        try:
            await self.trail.add(record)
        except PyMongoError:
            # The refusal stands either way; losing its record must not turn it into a 500.
            log.warning("could not record a refused %s in the audit trail", record["action"])


@dataclass(frozen=True)
class Window:
    """The rate-limit window of one client address, at one door."""

    door: Door
    address: str

    async def hit(self, cost: int = 1) -> int | None:
        return await self.door.limited(self.address, cost)


def _too_many(wait: int, more: str = "") -> tuple[bytes, list[tuple[str, str]]]:
    msg = f"too many requests from this address{more}; retry in {wait} s, or use a credential"
    return _error(("client",), msg, "rate_limited"), [("retry-after", str(wait))]


async def charge(request: Request, count: int) -> JSONResponse | None:
    """Count `count` requests more against the caller's window: the door's 429 if they do
    not fit, else None. For a request that carries several (a batch of n reports is n
    requests, the first counted by the door as it came in); staff have no window."""
    window: Window | None = request.scope.get(WINDOW)
    if window is None or count <= 0 or not (wait := await window.hit(count)):
        return None
    body, headers = _too_many(wait, f" (this request counts as {count + 1})")
    return JSONResponse(json.loads(body), status_code=429, headers=dict(headers))


DOOR_ANSWERS = {
    "413": "The request body is too large",
    "429": "Too many requests from this address: retry after `Retry-After` seconds",
}


def _document_refusals(app: FastAPI) -> None:
    """Name the door's answers on every operation of the OpenAPI document, so clients and
    schema-based tests expect them (in the shape of `gridloop.errors.Refusal`, if used)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            known = "Refusal" in schema.get("components", {}).get("schemas", {})
            content = {"application/json": {"schema": {"$ref": "#/components/schemas/Refusal"}}}
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.setdefault("responses", {})
                    for status, description in DOOR_ANSWERS.items():
                        answer = {"description": description} | (
                            {"content": content} if known else {}
                        )
                        responses.setdefault(status, answer)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
