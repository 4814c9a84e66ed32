"""Who may see and act on which grid: a grid's staff and its supervisor act only in the
grids they work now; the centres, the shift lead and admin read every grid."""

from __future__ import annotations

from gridloop.auth import Principal, Role
from gridloop.refusal import Refused, Why

# Read every grid (the shift lead sees who patrols where now).
OVERSEERS = (Role.shift_lead, Role.command_centre, Role.supervision_centre, Role.admin)
# Act in their own grids only.
GRID_PEOPLE = (Role.grid_staff, Role.supervisor)
READERS = (*OVERSEERS, *GRID_PEOPLE)
# Change the register (assign, release).
REGISTRARS = (Role.shift_lead, Role.admin)


def oversees(who: Principal) -> bool:
    return who.role in OVERSEERS


def own_grid(
    who: Principal, grid: str, theirs: list[str], where: tuple[str, ...] = ("path", "grid")
) -> None:
    """Refuse (403) a grid person acting on a grid they do not work now."""
    if who.role in GRID_PEOPLE and grid not in theirs:
        raise Refused(Why.forbidden, where, f"{who.subject} does not work grid {grid}")
