"""Patrol routes: clock in and out inside one's grid, the track in pieces, and who
patrols where now (docs/grid.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gridloop.auth import Principal, require
from gridloop.errors import refusals
from schemas.limits import Latitude, Longitude
from services.grid.access import GRID_PEOPLE, READERS
from services.grid.geofence import Located
from services.grid.patrolling import Patrols, TrackPoint
from services.grid.staff_api import GridCode, Key

router = APIRouter(tags=["patrols"])
Reader = Annotated[Principal, Depends(require(*READERS))]
Patroller = Annotated[Principal, Depends(require(*GRID_PEOPLE))]
PatrolId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _patrols(request: Request) -> Patrols:
    patrols: Patrols = request.app.state.patrols
    return patrols


Service = Annotated[Patrols, Depends(_patrols)]


class Spot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lon: Longitude
    lat: Latitude


class Clock(BaseModel):
    """Where one clocks in or out."""

    model_config = ConfigDict(extra="forbid")
    point: Spot


class Fix(Spot):
    at: AwareDatetime  # when the device took the fix


class Piece(BaseModel):
    """One piece of the track: its number in the patrol (from 0) and its fixes."""

    model_config = ConfigDict(extra="forbid")
    seq: Annotated[int, Field(ge=0, le=1_000_000)]
    points: Annotated[list[Fix], Field(min_length=1, max_length=500)]


class PlaceOut(BaseModel):
    lon: float
    lat: float
    at: datetime
    outside: bool = False


class PatrolOut(BaseModel):
    patrol: str
    staff: str
    name: str = ""  # the register's display name of the patroller
    grid: str
    open: bool
    started_at: datetime
    start: PlaceOut
    ended_at: datetime | None
    end: PlaceOut | None
    last: PlaceOut
    points: int
    outside: int


class PatrolTrack(PatrolOut):
    track: list[PlaceOut]


class PieceOut(BaseModel):
    patrol: str
    seq: int
    stored: bool  # false: this piece was stored before, nothing changed
    outside: int = 0


def _located(spot: Spot) -> Located:
    return Located(spot.lon, spot.lat)


@router.post(
    "/grids/{grid}/patrols", status_code=201, responses=refusals(401, 403, 404, 409, 422, 503)
)
async def clock_in(
    who: Patroller,
    patrols: Service,
    grid: GridCode,
    body: Clock,
    response: Response,
    key: Key = None,
) -> PatrolOut:
    """Clock in (巡查签到) inside one's grid; outside it is refused (422) or flagged, as the
    pack's `patrols.outside` says. One open patrol a person."""
    status, found = await patrols.clock_in(who, grid, _located(body.point), key)
    response.status_code = status
    return PatrolOut.model_validate(found)


@router.post(
    "/patrols/{patrol}/track", status_code=201, responses=refusals(401, 403, 404, 409, 422)
)
async def track(
    who: Patroller, patrols: Service, patrol: PatrolId, body: Piece, response: Response
) -> PieceOut:
    """Upload a piece of the track. Idempotent by `seq`: the same piece again stores
    nothing (200); other points under a stored `seq` are refused (409)."""
    fixes = [TrackPoint(p.lon, p.lat, p.at) for p in body.points]
    status, found = await patrols.track(who, patrol, body.seq, fixes)
    response.status_code = status
    return PieceOut.model_validate(found)


@router.post("/patrols/{patrol}/end", responses=refusals(401, 403, 404, 409, 422, 503))
async def clock_out(who: Patroller, patrols: Service, patrol: PatrolId, body: Clock) -> PatrolOut:
    """Clock out; the same clock-out again answers the ended patrol."""
    return PatrolOut.model_validate(await patrols.clock_out(who, patrol, _located(body.point)))


@router.get("/patrols", responses=refusals(401, 403, 404))
async def now_open(
    who: Reader,
    patrols: Service,
    grid: Annotated[str | None, Query(pattern=r"^\d{14,15}$")] = None,
    ended_since: Annotated[AwareDatetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[PatrolOut]:
    """Who patrols where now: the open patrols with their last point (the shift lead and
    the centres: every grid; a grid's people: their own grids). With `ended_since`: the
    patrols ended since then instead (the last shifts), the latest ended first, `limit`
    at most."""
    if ended_since is not None:
        ended = await patrols.ended_since(who, grid, ended_since, limit)
        return [PatrolOut.model_validate(p) for p in ended]
    return [PatrolOut.model_validate(p) for p in await patrols.now_open(who, grid)]


@router.get("/patrols/{patrol}", responses=refusals(401, 403, 404))
async def one(who: Reader, patrols: Service, patrol: PatrolId) -> PatrolTrack:
    """A patrol with its whole track."""
    found: dict[str, Any] = await patrols.one(who, patrol)
    return PatrolTrack.model_validate(found)
