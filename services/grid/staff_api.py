"""The staff register's routes: who works a grid (now, at a time, ever), which grids a
person works, and the shift lead's or admin's assignments and releases."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gridloop.auth import Principal, require
from gridloop.citypack.staff import StaffId, StaffRole
from gridloop.errors import refusals
from gridloop.mongo import Document
from services.grid.access import READERS, REGISTRARS
from services.grid.register import Spell
from services.grid.service import GridService, spell_body

router = APIRouter(tags=["staff"])
Reader = Annotated[Principal, Depends(require(*READERS))]
Registrar = Annotated[Principal, Depends(require(*REGISTRARS))]
GridCode = Annotated[str, Path(pattern=r"^\d{14,15}$")]
StaffPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Key = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$"),
]


def _service(request: Request) -> GridService:
    grid: GridService = request.app.state.grid
    return grid


Service = Annotated[GridService, Depends(_service)]


class SpellOut(BaseModel):
    """One person working the grid in one role (`since` null: from the city pack; `until`
    null: still)."""

    spell: str
    staff: str
    name: str
    role: StaffRole
    since: datetime | None
    until: datetime | None

    @classmethod
    def of(cls, s: Spell) -> SpellOut:
        return cls.model_validate(spell_body(s))


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staff: StaffId
    name: Annotated[str, Field(min_length=1, max_length=100)]  # a display name, no phone
    role: StaffRole


class Release(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: StaffRole
    reason: Annotated[str | None, Field(max_length=500)] = None


@router.get("/grids/{grid}/staff", responses=refusals(401, 403, 404))
async def grid_staff(
    who: Reader,
    service: Service,
    grid: GridCode,
    at: Annotated[AwareDatetime | None, Query(description="who covered it then")] = None,
) -> list[SpellOut]:
    """Who works the grid now, or worked it at `at`."""
    return [SpellOut.of(s) for s in await service.staff(who, grid, at)]


@router.get("/grids/{grid}/history", responses=refusals(401, 403, 404))
async def grid_history(who: Reader, service: Service, grid: GridCode) -> list[SpellOut]:
    """Every spell of the grid's register, ended or not: who covered it when."""
    return [SpellOut.of(s) for s in await service.history(who, grid)]


@router.get("/staff/{staff}/grids", responses=refusals(401, 403))
async def staff_grids(who: Reader, service: Service, staff: StaffPath) -> list[str]:
    """The grids a person works now (a grid's people: only their own)."""
    return await service.grids_of(who, staff)


def _answer(response: Response, given: tuple[int, Document]) -> SpellOut:
    response.status_code = given[0]
    return SpellOut.model_validate(given[1])


@router.post(
    "/grids/{grid}/staff", status_code=201, responses=refusals(401, 403, 404, 409, 422, 503)
)
async def assign(
    who: Registrar,
    service: Service,
    grid: GridCode,
    body: Assignment,
    response: Response,
    key: Key = None,
) -> SpellOut:
    """Assign a person to the grid in a role (a spell begins; `gridloop.grid.staff_assigned`).
    One grid manager and one supervisor a grid: release the one there first (409)."""
    given = await service.assign(who, grid, body.staff, body.name, body.role, key)
    return _answer(response, given)


@router.post(
    "/grids/{grid}/staff/{staff}/release",
    responses=refusals(401, 403, 404, 409, 422, 503),
)
async def release(
    who: Registrar,
    service: Service,
    grid: GridCode,
    staff: StaffPath,
    body: Release,
    response: Response,
    key: Key = None,
) -> SpellOut:
    """Release a person from the grid in a role (their spell ends;
    `gridloop.grid.staff_released`)."""
    given = await service.release(who, grid, staff, body.role, body.reason, key)
    return _answer(response, given)
