"""The grid service's HTTP API: the routers of its parts (the staff register, patrols, and
whatever joins them: `ROUTERS`), with the kernel's auth, refusals, limits and ops routes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fastapi import APIRouter, FastAPI

from gridloop.auth import CredentialStore
from gridloop.errors import install_error_handlers
from gridloop.http import HttpLimits, harden
from gridloop.runtime import add_ops_routes
from services.grid import households_api, patrol_api, staff_api, visits_api
from services.grid.service import GridService

# Each part of the grid service adds its router here.
ROUTERS: tuple[APIRouter, ...] = (
    staff_api.router,
    patrol_api.router,
    households_api.router,
    visits_api.router,
)


def create_app(
    grid: GridService,
    credentials: CredentialStore,
    limits: HttpLimits | None = None,
    routers: Sequence[APIRouter] = ROUTERS,
    parts: Mapping[str, object] | None = None,
) -> FastAPI:
    """The app over `grid` (the register); `parts` are the other parts' service objects,
    kept on `app.state` under their names (`patrols`, …) for their routers."""
    app = FastAPI(title="gridloop grid: the grid's people", version="0.1.0")
    app.state.grid, app.state.credentials = grid, credentials
    for name, part in (parts or {}).items():
        setattr(app.state, name, part)
    for router in routers:
        app.include_router(router)
    install_error_handlers(app)
    harden(app, "grid", limits or HttpLimits())
    add_ops_routes(app)
    return app
