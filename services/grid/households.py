"""The household register's service layer: each command on one path — load → decide (the
pure `doors.py`) → claim → publish → remember — and the reads, each refused to a role or a
grid person it is not for. `Visits` (visits.py) builds on it.

- **Who sees household data** (doors, occupancy, names where the pack keeps them, visits and
  their findings): the grid's own staff, the supervision and command centres, admin; not
  departments, supervisors, the hotline or the public (`HOUSEHOLD_READERS`). Coverage is a
  figure without personal data: also the shift lead.
- **Who changes the register**: the grid's own staff and admin. A change that changes
  nothing (a retry) is no new fact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Self

from pymongo.asynchronous.database import AsyncDatabase

from gridloop import failpoints
from gridloop.access import Principal, Role
from gridloop.audit import AuditTrail, household_read
from gridloop.commands.kafka import publish_or_refuse
from gridloop.kafka import EventProducer
from gridloop.mongo import Document
from gridloop.refusal import conflict, not_found
from schemas.envelope import Envelope
from schemas.events import EventData
from services.grid import doors
from services.grid.access import spell_roles
from services.grid.doors import ChangeDoor, Household, RegisterDoor
from services.grid.intake_client import Reporter
from services.grid.register import covering
from services.grid.service import SOURCE, GridService
from services.grid.visit_store import VisitStore

# Household data (doors, occupancy, names, visits and findings) is shown to these roles
# across grids, and to a grid's own staff in their grids.
HOUSEHOLD_READERS = (Role.supervision_centre, Role.command_centre, Role.admin)
COVERAGE_READERS = (*HOUSEHOLD_READERS, Role.shift_lead)


class Households:
    """The register's commands and reads, and what every part of households and visits
    shares: who may, the seed, the log."""

    def __init__(self, grid: GridService, store: VisitStore, intake: Reporter) -> None:
        self.grid, self.store, self.intake = grid, store, intake
        self.pack, self.now = grid.pack, grid.now
        self.producer: EventProducer = grid.producer
        self._seeding: asyncio.Future[int] | None = None
        self.audit = AuditTrail(store.households.database)

    @classmethod
    async def build(
        cls,
        grid: GridService,
        db: AsyncDatabase[Document],
        intake: Reporter,
        background: bool = False,
    ) -> Self:
        """The register indexed and seeded from the pack (once: the API's changes stand).
        In the `background`, the service answers meanwhile and what reads or changes the
        register waits for the seed: a generated district's 30,000 doors take half a
        minute to write the first time, longer than a service may take to start."""
        store = VisitStore(db)
        await store.create_indexes()
        visits = cls(grid, store, intake)
        visits._seeding = asyncio.ensure_future(store.seed(grid.pack))
        if not background:
            await visits.seeded()
        return visits

    async def seeded(self) -> None:
        """Wait until the pack's register is in the store (shielded: a request given up on
        does not cancel the seed)."""
        if self._seeding is not None:
            await asyncio.shield(self._seeding)

    # --- who may ---------------------------------------------------------------------------

    async def theirs(self, who: Principal) -> list[str]:
        """The grids a grid person works now in a grid staff's spells (none for any other
        role: a supervisor's spells are not a grid staff credential's)."""
        if who.role is not Role.grid_staff:
            return []
        return await self.grid.worked_by(who)

    async def theirs_at(self, who: Principal, grid: str, at: datetime) -> list[str]:
        """The grids a grid person works now, and `grid` if they worked it at `at`: a visit
        made before a release and sent later from an offline handheld is theirs."""
        now = await self.theirs(who)
        if who.role is not Role.grid_staff or grid in now:
            return now
        head = await self.grid.store.head(grid)
        spells = covering(head.spells if head is not None else [], at)
        roles = spell_roles(who)
        mine = any(s.staff == who.subject and s.role in roles for s in spells)
        return [*now, grid] if mine else now

    async def may_read(self, who: Principal, grid: str, roles: Sequence[Role]) -> None:
        """An unknown grid is 404; a grid person sees only their grids (403)."""
        self._known(grid)
        if who.role in roles:
            return
        doors.may_act(who, grid, await self.theirs(who))

    def _known(self, grid: str) -> None:
        if grid not in self.pack.grid_by_code:
            raise not_found(("path", "grid"), f"no grid {grid} in the city pack")

    # --- the register ---------------------------------------------------------------------------

    async def register(self, who: Principal, grid: str) -> list[Household]:
        """The grid's doors on the register now."""
        await self.may_read(who, grid, HOUSEHOLD_READERS)
        await self.seeded()
        now = self.now()
        found = [h for h in await self.store.register(grid) if h.on_register(now)]
        if self.pack.households.names and any(h.name for h in found):
            # Written before the answer is sent, as a read of a reporter's contact is.
            await self.audit.add(household_read("grid", who, grid, ["households.name"]))
        return found

    async def add(self, who: Principal, door: RegisterDoor) -> Household:
        await self._may_change(who, door.grid)
        await self.seeded()
        register = await self.store.register(door.grid)
        household = doors.decide_register(door, register, self.pack.households.names, self.now())
        envelope = self._envelope(doors.household_changed(household, 1, who))
        if not await self.store.claim_household(household, 1, [envelope]):
            raise conflict(("body", "door"), f"{household.id} exists already", "exists")
        await self._publish([envelope])
        await self.store.released_household(household.id, 1)
        return household

    async def change(self, who: Principal, household_id: str, change: ChangeDoor) -> Household:
        await self.seeded()
        stored = await self.store.household(household_id)
        if stored is None:
            raise not_found(("path", "household"), f"no household {household_id}")
        await self._may_change(who, stored.household.grid)
        if stored.outbox:  # an earlier claim's events, not known published
            await self._publish(stored.outbox, claimed=False)
        names = self.pack.households.names
        after = doors.decide_change(stored.household, change, names, self.now())
        if after == stored.household:  # nothing changes (a retry): no new fact
            return after
        rev = stored.rev + 1
        envelope = self._envelope(doors.household_changed(after, rev, who))
        if not await self.store.claim_household(after, rev, [envelope]):
            raise conflict(("path", "household"), f"{household_id} changed meanwhile; retry")
        await self._publish([envelope])
        await self.store.released_household(household_id, rev)
        return after

    async def _may_change(self, who: Principal, grid: str) -> None:
        self._known(grid)
        if who.role is not Role.admin:
            doors.may_act(who, grid, await self.theirs(who))

    # --- the log ----------------------------------------------------------------------------------

    def _envelope(self, event: EventData) -> Envelope:
        return Envelope(event, SOURCE, self.now())

    async def _publish(self, envelopes: Sequence[Envelope], claimed: bool = True) -> None:
        """Published, or 503 (the claim stands: the next command on it publishes it)."""
        if claimed:
            failpoints.reach("claimed")  # the fault suite's crash between claim and publish
        await publish_or_refuse(self.producer, envelopes)
