"""The household register's doors (楼栋户籍), pure: a door as it changes (occupancy, on and
off the register), who may act in a grid, and the fact each change publishes. No HTTP, Kafka
or MongoDB.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from gridloop.access import Principal, Role
from gridloop.citypack.households import HouseholdEntry, Occupancy
from gridloop.refusal import Refused, Why, conflict, invalid
from schemas.events import GridActor, HouseholdChanged


@dataclass(frozen=True)
class Household:
    """A door of a grid's register: its occupancy since each change (`changes`, oldest
    first; a change at None is the pack's, from the start), on the register from `since`
    (None: the pack's) until `until` (None: still)."""

    id: str
    grid: str
    building: str
    door: str
    changes: tuple[tuple[datetime | None, Occupancy], ...]
    since: datetime | None = None
    until: datetime | None = None
    name: str | None = None

    @property
    def occupancy(self) -> Occupancy:
        return self.changes[-1][1]

    def occupancy_at(self, at: datetime) -> Occupancy | None:
        """How the door was used at `at` (None: not yet on the register)."""
        found = [o for when, o in self.changes if when is None or when <= at]
        return found[-1] if found else None

    def on_register(self, at: datetime) -> bool:
        started = self.since is None or self.since <= at
        return started and (self.until is None or at < self.until)


def from_pack(entry: HouseholdEntry) -> Household:
    return Household(
        entry.id,
        entry.grid,
        entry.building,
        entry.door,
        ((None, entry.occupancy),),
        name=entry.name,
    )


@dataclass(frozen=True)
class RegisterDoor:
    """A grid person adds a door to the grid's register."""

    household_id: str
    grid: str
    building: str
    door: str
    occupancy: Occupancy
    name: str | None = None


@dataclass(frozen=True)
class ChangeDoor:
    """A door's occupancy (and name, where names are kept) changed, or the door removed."""

    occupancy: Occupancy | None = None
    name: str | None = None
    removed: bool = False


def decide_register(
    door: RegisterDoor, register: Iterable[Household], names: bool, now: datetime
) -> Household:
    """The new door, refused when it names someone where names are off (422) or is on the
    grid's register already (409)."""
    _names_allowed(door.name, names)
    for h in register:
        if h.until is None and (h.building, h.door) == (door.building, door.door):
            raise conflict(
                ("body", "door"), f"door {door.door} of {door.building} is {h.id} already", "exists"
            )
    return Household(
        door.household_id,
        door.grid,
        door.building,
        door.door,
        ((now, door.occupancy),),
        since=now,
        name=door.name,
    )


def decide_change(
    household: Household, change: ChangeDoor, names: bool, now: datetime
) -> Household:
    """The door after `change` — the same door when it changes nothing (a retry: no new
    fact), removal of a removed door included; refused on a removed door (409), a name where
    names are off (422), and a change that says nothing (422)."""
    if household.until is not None:
        if change.removed:
            return household
        raise conflict(("path", "household"), f"{household.id} was removed", "removed")
    _names_allowed(change.name, names)
    if change.removed:
        return replace(household, until=now)
    if change.occupancy is None and change.name is None:
        raise invalid(("body",), "say the new occupancy, name or removed: true", "empty_change")
    changes = household.changes
    if change.occupancy is not None and change.occupancy is not household.occupancy:
        changes = (*changes, (now, change.occupancy))
    return replace(household, changes=changes, name=change.name or household.name)


def _names_allowed(name: str | None, names: bool) -> None:
    if name is not None and not names:
        raise invalid(
            ("body", "name"),
            "this city keeps no names in its household register (city.yaml households.names)",
            "names_off",
        )


def may_act(who: Principal, grid: str, theirs: Sequence[str]) -> None:
    """Only a grid's own staff act in it: another grid's staff, or any other role, is
    refused (403)."""
    if who.role is not Role.grid_staff:
        raise Refused(Why.forbidden, ("header", "Authorization"), "only grid staff do this")
    if grid not in theirs:
        raise Refused(Why.forbidden, ("path", "grid"), f"{who.subject} does not work grid {grid}")


def actor_of(who: Principal) -> GridActor:
    return GridActor(role=who.role.value, id=who.subject[:64])


def household_changed(household: Household, change: int, who: Principal) -> HouseholdChanged:
    """The door's fact for the log: where and how it is used, never its name."""
    return HouseholdChanged(
        case_id=household.grid,
        actor=actor_of(who),
        household=household.id,
        building=household.building,
        door=household.door,
        occupancy=household.occupancy.value,
        removed=household.until is not None,
        change=change,
    )
