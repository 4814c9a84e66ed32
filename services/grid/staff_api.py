"""The staff register's routes: who works a grid (now or at a time), which grids a person
works."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel

from gridloop.auth import Principal, require
from gridloop.errors import refusals
from services.grid.access import READERS
from services.grid.register import Spell
from services.grid.service import GridService

router = APIRouter(tags=["staff"])
Reader = Annotated[Principal, Depends(require(*READERS))]
GridCode = Annotated[str, Path(pattern=r"^\d{14,15}$")]


def _service(request: Request) -> GridService:
    grid: GridService = request.app.state.grid
    return grid


Service = Annotated[GridService, Depends(_service)]


class SpellOut(BaseModel):
    """One person working the grid in one role (`since` null: from the city pack)."""

    spell: str
    staff: str
    name: str
    role: str
    since: datetime | None
    until: datetime | None

    @classmethod
    def of(cls, s: Spell) -> SpellOut:
        return cls(
            spell=s.id, staff=s.staff, name=s.name, role=s.role.value, since=s.since, until=s.until
        )


@router.get("/grids/{grid}/staff", responses=refusals(401, 403, 404))
async def grid_staff(
    who: Reader,
    service: Service,
    grid: GridCode,
    at: Annotated[AwareDatetime | None, Query(description="who covered it then")] = None,
) -> list[SpellOut]:
    """Who works the grid now, or worked it at `at` (its history: `/grids/{grid}/history`)."""
    return [SpellOut.of(s) for s in await service.staff(who, grid, at)]
