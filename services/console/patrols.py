"""Who patrols where now (巡查动态): the shift lead's and the centres' look at the open
patrols, asked of the grid service's API (`GET /patrols`) with the person's session token,
so the grid service decides who may see which grid. Each row names the grid, the person,
when they clocked in, their last position and how much of their track lay outside. Below
them, the patrols ended in the last three days, the latest first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from gridloop.access import Role
from gridloop.citypack import CityPack
from gridloop.people import Session
from gridloop.svgmap import Frame
from schemas import clock
from services.console.kit import ask
from services.console.maps import Drawn, drawn, frame

Page = Callable[..., Response]
Sessions = Callable[[Request], Awaitable[Session]]
# The ended patrols listed: the last shifts, whatever hour the lead looks (at half past
# midnight "today's" would be none), and a weekend's on Monday morning.
ENDED_WITHIN = timedelta(days=3)
WATCHERS = frozenset({Role.shift_lead, Role.command_centre, Role.supervision_centre, Role.admin})


def rows(found: list[dict[str, Any]], pack: CityPack | None) -> list[dict[str, Any]]:
    """The API's patrols as the page shows them: times parsed, grids named."""
    shown = []
    communities = {c.code: c.name for c in pack.city.communities} if pack is not None else {}
    for patrol in found:
        grid = pack.grid_by_code.get(patrol["grid"]) if pack is not None else None
        last = patrol["last"]
        where = named(communities.get(grid.community, grid.community), grid.name) if grid else ""
        ended = patrol.get("ended_at")
        shown.append(
            patrol
            | {
                "grid_name": where,
                "started_at": datetime.fromisoformat(patrol["started_at"]),
                "ended_at": datetime.fromisoformat(ended) if ended else None,
                "last_at": datetime.fromisoformat(last["at"]),
                "where": f"{last['lon']:.5f}, {last['lat']:.5f}",
            }
        )
    return shown


def named(community: str, grid: str) -> str:
    """A grid named after its community, once: a pack's grid name may begin with the
    community's own (和平里第12社区 网格002)."""
    own = community.split(" ", 1)[0]
    rest = grid[len(own) :].strip() if own and grid.startswith(own) else grid
    return f"{community} {rest}"


@dataclass(frozen=True)
class PatrolMap:
    """The communities patrolled now, each patrol's last position a dot on them."""

    frame: Frame
    grids: list[Drawn]
    dots: list[tuple[float, float, dict[str, Any]]]


def patrol_map(pack: CityPack | None, shown: list[dict[str, Any]]) -> PatrolMap | None:
    if pack is None or not shown:
        return None
    communities = {p["grid"][:12] for p in shown}
    codes = [g.code for g in pack.grids if g.code[:12] in communities]
    points = [(p["last"]["lon"], p["last"]["lat"]) for p in shown]
    bounds = [pack.polygon(c).bounds for c in codes] + [(x, y, x, y) for x, y in points]
    f = frame(bounds, width=640.0)
    dots = [(*f.xy(x, y), p) for (x, y), p in zip(points, shown, strict=True)]
    return PatrolMap(f, drawn(f, pack, codes), dots)


def install(app: FastAPI, page: Page, session: Sessions) -> None:
    """Add the patrols page to the console `app`."""

    @app.get("/patrols")
    async def patrols(request: Request) -> Response:
        found = await session(request)
        if found.principal.role not in WATCHERS:
            return page(request, "elsewhere.html", 403, me=found)
        console = request.app.state.console
        since = (clock.now() - ENDED_WITHIN).isoformat()
        listed = await _listed(found, f"{console.grid_url}/patrols")
        ended = await _listed(found, f"{console.grid_url}/patrols", {"ended_since": since})
        shown = rows(listed or [], console.pack)
        return page(
            request,
            "patrols.html",
            200 if listed is not None and ended is not None else 503,
            me=found,
            patrols=shown,
            ended=rows(ended or [], console.pack),
            drawing=patrol_map(console.pack, shown),
            unavailable=listed is None or ended is None,
        )


async def _listed(
    found: Session, url: str, params: dict[str, str | int] | None = None
) -> list[dict[str, Any]] | None:
    """The grid service's list of patrols (None: it did not answer)."""
    answer = await ask(found, url, "GET", params=params)
    if answer is None or answer.status_code != 200:
        return None
    listed: list[dict[str, Any]] = answer.json()
    return listed
