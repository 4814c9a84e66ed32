"""The staff register's core (网格的人): a grid's spells — who worked it in which role, from
when until when — and the decisions that change them. Pure: no HTTP, Kafka or MongoDB.

A spell opens when a person is assigned to a grid in a role and closes when they are
released; closed spells stay, so the register answers who covered a grid at any time
(`covering`). The pack seeds a grid's first spells (`since` None: from the pack's start).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from gridloop.citypack.staff import SINGLE, StaffRole
from gridloop.refusal import conflict, not_found


@dataclass(frozen=True)
class Spell:
    """One person working one grid in one role, `since` (None: from the pack) `until`
    (None: still)."""

    id: str
    staff: str
    name: str
    role: StaffRole
    since: datetime | None = None
    until: datetime | None = None

    @property
    def open(self) -> bool:
        return self.until is None

    def covers(self, at: datetime) -> bool:
        started = self.since is None or self.since <= at
        return started and (self.until is None or at < self.until)


def current(spells: Iterable[Spell]) -> list[Spell]:
    """The open spells: who works the grid now."""
    return [s for s in spells if s.open]


def covering(spells: Iterable[Spell], at: datetime | None) -> list[Spell]:
    """Who worked the grid at `at` (now, when None), by role then staff id."""
    found = [s for s in spells if (s.open if at is None else s.covers(at))]
    return sorted(found, key=lambda s: (list(StaffRole).index(s.role), s.staff))


def assign(
    spells: Sequence[Spell], spell_id: str, staff: str, name: str, role: StaffRole, at: datetime
) -> Spell:
    """The spell that assigning `staff` in `role` at `at` opens; refused (409) when they
    already work the grid in that role, or when a one-per-grid role (a grid manager, a
    supervisor) is held by someone else."""
    for s in current(spells):
        if s.staff == staff and s.role is role:
            raise conflict(("body", "staff"), f"{staff} already works this grid as {role.value}")
        if role in SINGLE and s.role is role:
            raise conflict(
                ("body", "role"),
                f"the grid's {role.value} is {s.staff}: release them first",
                "role_taken",
            )
    return Spell(spell_id, staff, name, role, since=at)


def release(spells: Sequence[Spell], staff: str, role: StaffRole, at: datetime) -> Spell:
    """The spell of `staff` in `role` closed at `at`; refused (404) when they do not work
    the grid in that role, (409) when `at` is before the spell began."""
    for s in current(spells):
        if s.staff == staff and s.role is role:
            if s.since is not None and at < s.since:
                raise conflict(("body", "at"), "a spell cannot end before it began")
            return replace(s, until=at)
    raise not_found(("path", "staff"), f"{staff} does not work this grid as {role.value}")
