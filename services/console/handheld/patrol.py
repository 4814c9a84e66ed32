"""巡查 Patrol on the handheld: clock in inside one of my grids (the phone's GPS), the track
sent in pieces while on patrol, clock out. Each is an outbox entry under a key the device
made: the clock-in goes to the grid service under that key (a retry answers the same
patrol), a piece under its number in the patrol (`seq`: the same piece again stores
nothing), the clock-out is answered the same when sent again. The device learns the
patrol's id from the clock-in's answer; pieces and the clock-out made offline wait in the
outbox behind the clock-in."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from services.console.handheld.edge import (
    Csrf,
    Key,
    caller,
    elsewhere,
    json_body,
    passed_on,
    person,
    refused,
    shown,
)
from services.console.kit import Pages, ask

router = APIRouter()
PatrolId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


def spot(sent: Any) -> dict[str, Any] | None:
    """The device's point `{lon, lat}` as the grid service takes it (it checks the values)."""
    if not isinstance(sent, dict):
        return None
    return {"lon": sent.get("lon"), "lat": sent.get("lat")}


@router.get("/m/patrol")
async def patrol_page(request: Request, kit: Pages) -> Response:
    """My grids to clock in, and the patrol I am on (the device keeps which one)."""
    found = await person(request, kit)
    if found is None:
        return await elsewhere(request, kit)
    answer = await ask(
        found, f"{kit.console.grid_url}/staff/{found.principal.subject}/grids", "GET"
    )
    grids = answer.json() if answer is not None and answer.status_code == 200 else None
    return shown(request, kit, found, "patrol", grids=grids or [], unavailable=grids is None)


@router.post("/m/api/patrols")
async def clock_in(request: Request, kit: Pages, csrf: Csrf, key: Key) -> Response:
    found = await caller(request, kit, csrf)
    if isinstance(found, JSONResponse):
        return found
    sent = await json_body(request)
    grid = str(sent.get("grid") or "")
    if not grid.isdigit() or len(grid) > 32:
        return refused(422, "grid", "choose one of your grids")
    url = f"{kit.console.grid_url}/grids/{grid}/patrols"
    return passed_on(
        await ask(found, url, body={"point": spot(sent.get("point"))}, key=key), "grid"
    )


@router.post("/m/api/patrols/{patrol}/{step}")
async def patrol_step(
    request: Request, kit: Pages, patrol: PatrolId, step: str, csrf: Csrf, key: Key
) -> Response:
    """A piece of the track (`track`: `{seq, points}`) or the clock-out (`end`: `{point}`)."""
    found = await caller(request, kit, csrf)
    if isinstance(found, JSONResponse):
        return found
    sent = await json_body(request)
    if step == "track":
        body: dict[str, Any] = {"seq": sent.get("seq"), "points": sent.get("points")}
    elif step == "end":
        body = {"point": spot(sent.get("point"))}
    else:
        return refused(404, "step", f"no step {step[:20]}")
    url = f"{kit.console.grid_url}/patrols/{patrol}/{step}"
    return passed_on(await ask(found, url, body=body, key=key), "grid")
