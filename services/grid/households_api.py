"""The household register's routes (楼栋户籍), and what the households-and-visits routes share
(`visits_api.py`):

- `GET /grids/{grid}/households`: the grid's doors (names only where the pack keeps them)
- `POST /grids/{grid}/households`, `PATCH /households/{id}`: add, change, remove a door

Who: household data to the grid's own staff, the supervision and command centres and admin;
changes by the grid's own staff and admin (`households.py`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict

from gridloop.auth import Principal, Role, require
from gridloop.citypack.households import Building, Door, HouseholdName, Occupancy
from gridloop.errors import refusals
from services.grid.doors import ChangeDoor, Household, RegisterDoor
from services.grid.households import HOUSEHOLD_READERS, Households

router = APIRouter(tags=["households and visits"])
GridCode = Annotated[str, Path(pattern=r"^\d{14,15}$")]
HouseholdRef = Annotated[str, Path(pattern=r"^hh_[0-9a-f]{16}$")]
Reader = Annotated[Principal, Depends(require(Role.grid_staff, *HOUSEHOLD_READERS))]
Registrar = Annotated[Principal, Depends(require(Role.grid_staff, Role.admin))]
READ = refusals(401, 403, 404)
ACT = refusals(401, 403, 404, 409, 503)


def _households(request: Request) -> Households:
    # The grid service's `visits` part (services.grid.visits.Visits) is the register too.
    found: Households = request.app.state.visits
    return found


Service = Annotated[Households, Depends(_households)]


class HouseholdOut(BaseModel):
    """A door of the register (`name` only where the city keeps names)."""

    household: str
    grid: str
    building: str
    door: str
    occupancy: Occupancy
    since: datetime | None  # null: from the city pack
    until: datetime | None = None
    name: str | None = None

    @classmethod
    def of(cls, h: Household, names: bool) -> HouseholdOut:
        name = h.name if names else None
        return cls(
            household=h.id,
            grid=h.grid,
            building=h.building,
            door=h.door,
            occupancy=h.occupancy,
            since=h.since,
            until=h.until,
            name=name,
        )


class DoorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    building: Building
    door: Door
    occupancy: Occupancy
    name: HouseholdName | None = None  # refused unless the city keeps names


class ChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    occupancy: Occupancy | None = None
    name: HouseholdName | None = None
    removed: bool = False  # the door leaves the register (kept for the history)


@router.get("/grids/{grid}/households", responses=READ)
async def households(who: Reader, service: Service, grid: GridCode) -> list[HouseholdOut]:
    """The grid's doors on the register now, by building and door."""
    names = service.pack.households.names
    return [HouseholdOut.of(h, names) for h in await service.register(who, grid)]


@router.post("/grids/{grid}/households", status_code=201, responses=ACT | refusals(422))
async def add_household(
    who: Registrar, service: Service, grid: GridCode, door: DoorIn
) -> HouseholdOut:
    """Add a door to the grid's register."""
    hid = f"hh_{uuid.uuid4().hex[:16]}"
    command = RegisterDoor(hid, grid, door.building, door.door, door.occupancy, door.name)
    return HouseholdOut.of(await service.add(who, command), service.pack.households.names)


@router.patch("/households/{household}", responses=ACT | refusals(422))
async def change_household(
    who: Registrar, service: Service, household: HouseholdRef, change: ChangeIn
) -> HouseholdOut:
    """Change a door's occupancy (or name, where names are kept), or remove it."""
    command = ChangeDoor(change.occupancy, change.name, change.removed)
    after = await service.change(who, household, command)
    return HouseholdOut.of(after, service.pack.households.names)
