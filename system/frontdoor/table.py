"""The front door's route table: which service answers a method and path at the door.

Derived from the services' own FastAPI apps (`apps()` builds each one as its main does,
on stand-ins that are never called), so a route a service adds is routed at the door,
here and in the generated Caddyfile, without editing a table by hand:

- every route of an API service's OpenAPI is served under `/v1` (`/v1/reports` is
  intake's `/reports`): the door maps the version, the services keep their paths;
- a service's *pages* keep their paths at the door's root: the workbench (everything the
  console serves, its `/live` stream and `/static` files among them), the big screen
  (`/screen`, `/screen/data`), and Open311 (`/open311/v2/…`, versioned by its own spec);
- ops routes (`/healthz`, `/metrics`) and each service's `/docs` stay on the service.

Where two services' paths overlap (intake's `POST /cases/{id}/file` and dispatch's `POST
/cases/{id}/dispatch` both match `/cases/{case_id}/…`), the route with the more literal
segments, compared segment by segment from the left, is tried first; two services
claiming the very same method and path are settled by `PREFERRED`, or the table is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from fastapi import FastAPI
from starlette.routing import BaseRoute, Mount, Route

API = "/v1"  # the version of the public API at the door
OPS = frozenset({"/healthz", "/metrics"})
# Paths a service serves at the door's root as they are, not under `/v1`.
PAGES: Mapping[str, tuple[str, ...]] = {
    "console": ("/",),  # the whole workbench
    "evaluation": ("/screen",),  # the big screen and its data
    "intake": ("/open311/",),  # Open311 GeoReport v2, versioned by its own spec
}
# Pages a service serves outside its OpenAPI (`include_in_schema=False`), by method and path.
UNLISTED: Mapping[str, tuple[tuple[str, str], ...]] = {"evaluation": (("GET", "/screen"),)}
API_SERVICES = ("intake", "dispatch", "notify", "evaluation", "grid")
# Two services serve the same method and path; at the door, this one does. Intake's `GET
# /cases/{id}` is the case for every staff role (timeline, lights); dispatch's is the
# command centre's look at the case's head, still served on dispatch's own port.
PREFERRED: Mapping[tuple[str, str], str] = {("GET", "/v1/cases/{}"): "intake"}
_STATIC = frozenset({"GET", "HEAD"})
METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD"})
ROUTED = (*API_SERVICES, "console")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")


@dataclass(frozen=True)
class DoorRoute:
    """One route at the door: `methods` on `path` (a template, `{name}` one segment,
    `{name:path}` the rest), answered by `service` at `path` less `strip`; a `prefix`
    route takes everything under its path (a mount of static files)."""

    service: str
    methods: frozenset[str]
    path: str
    strip: str = ""
    prefix: bool = False

    @property
    def shape(self) -> str:
        """The path with its parameters unnamed: two routes of one shape are one route."""
        return _PARAM.sub("{}", self.path) + ("/…" if self.prefix else "")

    @property
    def pattern(self) -> str:
        """The path as an anchored regular expression (for the door and for Caddy)."""
        parts, at = [], 0
        for found in _PARAM.finditer(self.path):
            parts.append(re.escape(self.path[at : found.start()]))
            parts.append(".*" if found.group(2) == "path" else "[^/]+")
            at = found.end()
        parts.append(re.escape(self.path[at:]))
        tail = "(/.*)?" if self.prefix else ""
        return "^" + "".join(parts) + tail + "$"

    def specificity(self) -> tuple[tuple[int, ...], int]:
        """Sort key: literal segments before parameters, segment by segment; then longer."""
        ranks = []
        for segment in self.path.strip("/").split("/"):
            found = _PARAM.fullmatch(segment)
            ranks.append(0 if not found else 2 if found.group(2) == "path" else 1)
        return (*ranks, 3 if self.prefix else 0), -len(self.path)


@dataclass(frozen=True)
class Match:
    route: DoorRoute
    upstream: str  # the path at the service


class RouteTable:
    """The door's routes, most specific first; `find` is pure."""

    def __init__(self, routes: Iterable[DoorRoute]) -> None:
        settled = _settle_clashes(list(routes))
        ordered = sorted(settled, key=lambda r: (r.specificity(), r.path, r.service))
        self.routes = tuple(ordered)
        self._compiled = [(re.compile(r.pattern), r) for r in self.routes]

    def find(self, method: str, path: str) -> Match | None:
        """The route for `method` on `path`; a path some route has, asked with a method
        none of them takes, goes to the first such route (its service answers 405)."""
        fallback: DoorRoute | None = None
        for regex, route in self._compiled:
            if regex.match(path):
                if method in route.methods:
                    return Match(route, _upstream(route, path))
                fallback = fallback or route
        return Match(fallback, _upstream(fallback, path)) if fallback else None

    def services(self) -> set[str]:
        return {r.service for r in self.routes}


def _upstream(route: DoorRoute, path: str) -> str:
    return path[len(route.strip) :] or "/"


def _settle_clashes(routes: Sequence[DoorRoute]) -> list[DoorRoute]:
    """Each method and path to one service: where two claim it, the one `PREFERRED` names
    keeps it and the other loses that method; a clash nobody settled is refused."""
    claims: dict[tuple[str, str], list[DoorRoute]] = {}
    for route in routes:
        for method in route.methods:
            claims.setdefault((method, route.shape), []).append(route)
    lost: dict[DoorRoute, set[str]] = {}
    for (method, shape), claimants in claims.items():
        if len({r.service for r in claimants}) < 2:
            continue
        winner = PREFERRED.get((method, shape))
        if winner not in {r.service for r in claimants}:
            names = " and ".join(sorted({r.service for r in claimants}))
            raise ValueError(f"{method} {shape} is claimed by {names}: settle it in PREFERRED")
        for route in claimants:
            if route.service != winner:
                lost.setdefault(route, set()).add(method)
    kept = [replace(r, methods=r.methods - lost.get(r, set())) for r in routes]
    return [r for r in kept if r.methods]


def door_routes(service: str, app: FastAPI) -> list[DoorRoute]:
    """The routes of `service`'s app as the door serves them: its OpenAPI's operations
    (the public contract) and, at the root, its own routes and mounts under its pages."""
    pages = PAGES.get(service, ())
    found: list[DoorRoute] = []
    if service in API_SERVICES:
        for path, operations in app.openapi().get("paths", {}).items():
            methods = frozenset(m.upper() for m in operations if m.upper() in METHODS)
            found.append(_placed(service, path, methods, pages))
    for path, route in _flat(app.routes):  # pages: the app's own and its routers'
        if isinstance(route, Mount):
            mount = _under(path, pages)
            found += [DoorRoute(service, _STATIC, path, prefix=True)] if mount else []
        elif isinstance(route, Route) and route.methods and _page(path, pages):
            found.append(DoorRoute(service, frozenset(route.methods), path))
    found += [DoorRoute(service, frozenset({m}), p) for m, p in UNLISTED.get(service, ())]
    return list({(r.path, r.methods, r.prefix): r for r in found}.values())


def _flat(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """Every route with its full path. FastAPI (0.165) keeps an included router as one
    route of its own (`_IncludedRouter`, with the router and its prefix), not as copies of
    its routes: the console's map and photos are in one."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            within = prefix + route.include_context.prefix  # type: ignore[attr-defined]
            yield from _flat(included.routes, within)
        else:
            yield prefix + getattr(route, "path", ""), route


def _page(path: str, pages: tuple[str, ...]) -> bool:
    return path not in OPS and _under(path, pages)


def _under(path: str, pages: tuple[str, ...]) -> bool:
    return any(path.startswith(p) or path == p.rstrip("/") for p in pages)


def _placed(service: str, path: str, methods: frozenset[str], pages: tuple[str, ...]) -> DoorRoute:
    if _under(path, pages):
        return DoorRoute(service, methods, path)
    return DoorRoute(service, methods, API + path, strip=API)


def table(built: Mapping[str, FastAPI] | None = None) -> RouteTable:
    """The door's table, from the services' apps (built here unless given)."""
    built = built if built is not None else apps()
    return RouteTable(r for name, app in built.items() for r in door_routes(name, app))


def apps() -> dict[str, FastAPI]:
    """Each routed service's FastAPI app, built by its own `create_app` on stand-ins: a
    database client that never connects (nothing is called while the routes are read)."""
    from pymongo import AsyncMongoClient

    from gridloop.audit import AuditTrail
    from gridloop.auth import CredentialStore
    from gridloop.cases.reader import CaseReader
    from gridloop.people import People
    from services.console.app import Console
    from services.console.app import create_app as console_app
    from services.console.live import Live
    from services.console.throttle import Throttle
    from services.dispatch.api import create_app as dispatch_app
    from services.evaluation.api import create_app as evaluation_app
    from services.grid.api import create_app as grid_app
    from services.intake.api import create_app as intake_app
    from services.notify.admin import create_app as notify_app

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        "mongodb://127.0.0.1:9", connect=False
    )
    db = client["gridloop-routes"]
    credentials = CredentialStore(db)
    unused = cast(Any, _Standin(credentials))
    reader = CaseReader(db)
    console = Console(People(db), reader, AuditTrail(db), "", Throttle(), Live(reader))
    return {
        "intake": intake_app(unused),
        "dispatch": dispatch_app(unused, credentials, reader=reader),
        "notify": notify_app(unused, unused, credentials),
        "evaluation": evaluation_app(unused, credentials),
        "grid": grid_app(unused, credentials),
        "console": console_app(console),
    }


@dataclass
class _Standin:
    """What a `create_app` keeps and never calls while routes are read (a service layer)."""

    credentials: Any
