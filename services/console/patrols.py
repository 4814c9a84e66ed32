"""Who patrols where now (巡查动态): the shift lead's and the centres' look at the open
patrols, asked of the grid service's API (`GET /patrols`) with the person's session token,
so the grid service decides who may see which grid. Each row names the grid, the person,
when they clocked in, their last position and how much of their track lay outside."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from gridloop.access import Role
from gridloop.citypack import CityPack
from gridloop.people import Session
from services.console.kit import ask

Page = Callable[..., Response]
Sessions = Callable[[Request], Awaitable[Session]]
WATCHERS = frozenset({Role.shift_lead, Role.command_centre, Role.supervision_centre, Role.admin})


def rows(found: list[dict[str, Any]], pack: CityPack | None) -> list[dict[str, Any]]:
    """The API's patrols as the page shows them: times parsed, grids named."""
    shown = []
    communities = {c.code: c.name for c in pack.city.communities} if pack is not None else {}
    for patrol in found:
        grid = pack.grid_by_code.get(patrol["grid"]) if pack is not None else None
        last = patrol["last"]
        where = f"{communities.get(grid.community, grid.community)} {grid.name}" if grid else ""
        shown.append(
            patrol
            | {
                "grid_name": where,
                "started_at": datetime.fromisoformat(patrol["started_at"]),
                "last_at": datetime.fromisoformat(last["at"]),
                "where": f"{last['lon']:.5f}, {last['lat']:.5f}",
            }
        )
    return shown


def install(app: FastAPI, page: Page, session: Sessions) -> None:
    """Add the patrols page to the console `app`."""

    @app.get("/patrols")
    async def patrols(request: Request) -> Response:
        found = await session(request)
        if found.principal.role not in WATCHERS:
            return page(request, "elsewhere.html", 403, me=found)
        console = request.app.state.console
        answer = await ask(found, f"{console.grid_url}/patrols", "GET")
        listed = answer.json() if answer is not None and answer.status_code == 200 else None
        return page(
            request,
            "patrols.html",
            200 if listed is not None else 503,
            me=found,
            patrols=rows(listed or [], console.pack),
            unavailable=listed is None,
        )
