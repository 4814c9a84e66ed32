"""Rate, errors and duration (RED) of every HTTP route of every service, written once:
`observe(app)` (called by `gridloop.runtime.add_ops_routes`, which every app calls).

- `gridloop_http_requests_total{route, method, status}`: requests answered, by route
  template (`/cases/{case_id}`, never the raw path: bounded labels), method and status
  class (`2xx` … `5xx`). Errors are `status="5xx"`; `4xx` are the callers'.
- `gridloop_http_request_duration_seconds{route, method}`: from the request's arrival to the
  end of its answer (a stream's whole life).

`/metrics` and `/healthz` are not counted: scrapes and probes would drown a quiet
service's traffic; so a process whose app has no other route (projections) exports neither
family. A request no route matches counts as route `unmatched`. The middleware wraps the
whole app, the door's refusals (413, 429) and the 500 of an unhandled error included.

Every (route, method) of the app is counted from 0 in each status class as the app starts,
so a quiet service's dashboard shows 0 requests, not "no data". When tracing is on
(`gridloop.tracing`), each request is also a SERVER span, named by its route, and its
duration carries the trace id as an exemplar (served in OpenMetrics, `runtime.add_ops_routes`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from fastapi import FastAPI
from opentelemetry.trace import Span
from prometheus_client import REGISTRY, Counter, Histogram
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridloop import tracing
from gridloop.http import OPS_PATHS

REQUESTS = Counter(
    "gridloop_http_requests_total",
    "HTTP requests answered, by route template, method and status class",
    ["route", "method", "status"],
    registry=None,
)
DURATION = Histogram(
    "gridloop_http_request_duration_seconds",
    "HTTP request duration, from arrival to the end of the answer, by route template",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=None,
)
CLASSES = ("2xx", "4xx", "5xx")  # counted from 0; 1xx and 3xx appear when they happen
UNMATCHED = "unmatched"
_exported: list[bool] = []  # whether this process's registry has the families


def observe(app: FastAPI) -> None:
    """Count, time and trace every request of `app`, outermost: installed when the app
    builds its middleware (at start-up), after every route and middleware is added."""
    build = app.build_middleware_stack

    def built() -> ASGIApp:
        zero(app.routes)
        return Observed(build())

    app.build_middleware_stack = built  # type: ignore[method-assign]


def routes_of(routes: Iterable[BaseRoute]) -> list[tuple[str, str]]:
    """Every (route template, method) an app answers, `/metrics` and `/healthz` aside."""
    found = []
    for route in routes:
        if isinstance(route, Mount):
            found.append((_template(route), "GET"))
        elif isinstance(route, Route) and route.path not in OPS_PATHS:
            found += [(route.path, m) for m in sorted(route.methods or ()) if m != "HEAD"]
    return found


def zero(routes: Iterable[BaseRoute]) -> None:
    """Export the families (once a process has an app with a route: projections' app has
    only `/metrics` and `/healthz`, and exports none) with every route's series at 0."""
    found = routes_of(routes)
    if found and not _exported:
        REGISTRY.register(REQUESTS)
        REGISTRY.register(DURATION)
        _exported.append(True)
    for route, method in found:
        DURATION.labels(route, method)
        for status in CLASSES:
            REQUESTS.labels(route, method, status)


def _template(route: BaseRoute) -> str:
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    return str(getattr(route, "path", UNMATCHED))


class Observed:
    """The RED metrics (and SERVER span) of every request to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPS_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: an error that escaped every handler
        span = _span(scope) if tracing.on() else None

        async def watching(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with tracing.current(span):
                await self.app(scope, receive, watching)
        finally:
            route = _template(scope["route"]) if "route" in scope else UNMATCHED
            method = scope["method"]
            REQUESTS.labels(route, method, f"{status // 100}xx").inc()
            elapsed = time.perf_counter() - started
            if span is None:
                DURATION.labels(route, method).observe(elapsed)
            else:
                DURATION.labels(route, method).observe(elapsed, _exemplar(span))
                case_id = (scope.get("path_params") or {}).get("case_id")
                tracing.answered(span, method, route, status, case_id)


def _exemplar(span: Span) -> dict[str, str] | None:
    """The request's trace id beside its duration (OpenMetrics exemplars: Grafana links a
    slow request to its trace); none for a trace not sampled, which is never exported."""
    context = span.get_span_context()
    return {"trace_id": f"{context.trace_id:032x}"} if context.trace_flags.sampled else None


def _span(scope: Scope) -> Span | None:
    parent = state = ""
    for key, value in scope["headers"]:
        if key == b"traceparent":
            parent = value.decode("latin-1")
        elif key == b"tracestate":
            state = value.decode("latin-1")
    return tracing.request_span(scope["method"], parent, state)
