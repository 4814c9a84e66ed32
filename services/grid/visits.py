"""Households and visits, the service layer: every command on one path — load → decide (the
pure `visiting.py`) → claim → publish → remember — and the reads, each refused to a role or a
grid person it is not for.

- **Who sees household data** (doors, occupancy, names where the pack keeps them, visits and
  their findings): the grid's own staff, the supervision and command centres, admin; not
  departments, supervisors, the hotline or the public (`HOUSEHOLD_READERS`). Coverage is a
  figure without personal data: also the shift lead.
- **Who changes the register and logs visits**: the grid's own staff (and admin for the
  register).
- **Remembered**: a visit logged under an `Idempotency-Key` has an id derived from the key
  and its sender, so the handheld sending a visit made offline twice finds the first (the
  same answer); a finding reported twice answers with the case it became.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from gridloop import failpoints
from gridloop.access import Principal, Role
from gridloop.commands.kafka import publish_or_refuse
from gridloop.kafka import EventProducer
from gridloop.mongo import Document
from gridloop.refusal import Refused, Why, conflict, invalid, not_found
from schemas.envelope import Envelope
from schemas.events import EventData
from services.grid import visiting as core
from services.grid.access import spell_roles
from services.grid.intake_client import Reporter
from services.grid.register import covering
from services.grid.service import SOURCE, GridService
from services.grid.visit_store import VisitStore
from services.grid.visiting import (
    ChangeDoor,
    Coverage,
    Household,
    LogVisit,
    RegisterDoor,
    ReportFinding,
    Visit,
)

# Household data (doors, occupancy, names, visits and findings) is shown to these roles
# across grids, and to a grid's own staff in their grids.
HOUSEHOLD_READERS = (Role.supervision_centre, Role.command_centre, Role.admin)
COVERAGE_READERS = (*HOUSEHOLD_READERS, Role.shift_lead)
ATTEMPTS = 4  # claims on one visit lost in a row before a finding's report gives up
VISITS = uuid.UUID("4b8f6a8e-2c1d-4f7e-9a3b-5d2e1c0f9b71")  # visit ids from keys


@dataclass(frozen=True)
class Asked:
    """How a request is known again: its sender's key (if any) and content."""

    key: str | None
    content: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()


def visit_id(who: Principal, key: str | None) -> str:
    """A visit's id: derived from its sender's key (a retry is the same visit), else new."""
    if key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(VISITS, f"{who.role.value}:{who.subject}:{key}"))


def finding_key(visit: str, index: int) -> str:
    """The Idempotency-Key a finding is reported to intake under: one case per finding."""
    return f"visit-{visit}-finding-{index}"


class Visits:
    def __init__(self, grid: GridService, store: VisitStore, intake: Reporter) -> None:
        self.grid, self.store, self.intake = grid, store, intake
        self.pack, self.now = grid.pack, grid.now
        self.producer: EventProducer = grid.producer
        self._seeding: asyncio.Future[int] | None = None

    @classmethod
    async def build(
        cls,
        grid: GridService,
        db: AsyncDatabase[Document],
        intake: Reporter,
        background: bool = False,
    ) -> Visits:
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
        core.may_act(who, grid, await self.theirs(who))

    def _known(self, grid: str) -> None:
        if grid not in self.pack.grid_by_code:
            raise not_found(("path", "grid"), f"no grid {grid} in the city pack")

    # --- the register ---------------------------------------------------------------------------

    async def register(self, who: Principal, grid: str) -> list[Household]:
        """The grid's doors on the register now."""
        await self.may_read(who, grid, HOUSEHOLD_READERS)
        await self.seeded()
        now = self.now()
        return [h for h in await self.store.register(grid) if h.on_register(now)]

    async def add(self, who: Principal, door: RegisterDoor) -> Household:
        await self._may_change(who, door.grid)
        await self.seeded()
        register = await self.store.register(door.grid)
        household = core.decide_register(door, register, self.pack.households.names, self.now())
        envelope = self._envelope(core.household_changed(household, 1, who))
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
        after = core.decide_change(stored.household, change, names, self.now())
        if after == stored.household:  # nothing changes (a retry): no new fact
            return after
        rev = stored.rev + 1
        envelope = self._envelope(core.household_changed(after, rev, who))
        if not await self.store.claim_household(after, rev, [envelope]):
            raise conflict(("path", "household"), f"{household_id} changed meanwhile; retry")
        await self._publish([envelope])
        await self.store.released_household(household_id, rev)
        return after

    async def _may_change(self, who: Principal, grid: str) -> None:
        self._known(grid)
        if who.role is not Role.admin:
            core.may_act(who, grid, await self.theirs(who))

    # --- visits ------------------------------------------------------------------------------

    async def log(self, log: LogVisit, asked: Asked) -> Visit:
        """A visit logged once per id: a request seen before is answered with its visit."""
        self._known(log.grid)
        if (seen := await self.store.visit(log.visit_id)) is not None:
            return await self._replayed(seen.visit, seen.fingerprint, seen.outbox, seen.rev, asked)
        await self.seeded()
        register = await self.store.register(log.grid)
        # As the database keeps it (UTC, milliseconds): a replay answers the same.
        log = replace(log, at=_millis(log.at.astimezone(UTC)))
        theirs = await self.theirs_at(log.who, log.grid, log.at)
        visit = core.decide_visit(log, register, theirs, _millis(self.now()))
        envelope = self._envelope(core.visit_logged(visit, log.who))
        if not await self.store.claim_visit(visit, asked.fingerprint, [envelope]):
            seen = await self.store.visit(visit.id)  # the same request, claimed just now
            assert seen is not None
            return await self._replayed(seen.visit, seen.fingerprint, seen.outbox, seen.rev, asked)
        await self._publish([envelope])
        await self.store.released_visit(visit.id, 1)
        return visit

    async def _replayed(
        self, visit: Visit, fingerprint: str, outbox: Sequence[Envelope], rev: int, asked: Asked
    ) -> Visit:
        if fingerprint != asked.fingerprint:
            raise invalid(
                ("header", "Idempotency-Key"),
                "this key was used for a different visit",
                "idempotency_key_reused",
            )
        await self._flush(outbox, visit.id, rev)
        return visit

    async def visits(
        self, who: Principal, grid: str, start: datetime, end: datetime
    ) -> list[Visit]:
        await self.may_read(who, grid, HOUSEHOLD_READERS)
        return await self.store.visits_of(grid, start, end, limit=500)

    async def visit(self, who: Principal, visit_id: str) -> Visit:
        stored = await self.store.visit(visit_id)
        if stored is None:
            raise not_found(("path", "visit"), f"no visit {visit_id}")
        try:
            await self.may_read(who, stored.visit.grid, HOUSEHOLD_READERS)
        except Refused as refused:  # another grid's visit: as if there were none
            if refused.why is Why.forbidden and who.role is Role.grid_staff:
                raise not_found(("path", "visit"), f"no visit {visit_id}") from None
            raise
        return stored.visit

    # --- a finding becomes a case or a dispute --------------------------------------------------

    async def report(self, ask: ReportFinding, token: str) -> Visit:
        """Report finding `ask.index` to intake and record the case it became, once. A
        claim lost to another finding of the visit is made again on the visit as it is
        (intake answers the same case: the key is the same)."""
        for _ in range(ATTEMPTS):
            stored = await self.store.visit(ask.visit_id)
            if stored is None:
                raise not_found(("path", "visit"), f"no visit {ask.visit_id}")
            await self._flush(stored.outbox, ask.visit_id, stored.rev)
            visit, theirs = stored.visit, await self.theirs(ask.who)
            core.may_act(ask.who, visit.grid, theirs)
            if core.finding_of(visit, ask.index).case_id is not None:
                return visit  # reported before: the case it became
            _, body = core.decide_report(visit, ask, theirs)
            case_id = await self.intake.report(body, token, finding_key(visit.id, ask.index))
            after = core.reported(visit, ask.index, case_id, str(body["kind"]))
            envelope = self._envelope(core.finding_reported(after, ask.index, ask.who))
            done = after.findings[ask.index]
            if await self.store.claim_finding(visit.id, stored.rev, ask.index, done, [envelope]):
                await self._publish([envelope])
                await self.store.released_visit(visit.id, stored.rev + 1)
                return after
        raise conflict(("path", "finding"), "the visit is changing too fast; retry", "busy")

    # --- coverage -------------------------------------------------------------------------------

    async def coverage(self, who: Principal, grid: str, period: str) -> Coverage:
        await self.may_read(who, grid, COVERAGE_READERS)
        span = core.period_of(period, self.pack.city.timezone)
        await self.seeded()
        register = await self.store.register(grid)
        visits = await self.store.visits_of(grid, span.start, span.end)
        return core.coverage(grid, span, register, visits, self.now())

    # --- the log ----------------------------------------------------------------------------------

    def _envelope(self, event: EventData) -> Envelope:
        return Envelope(event, SOURCE, self.now())

    async def _publish(self, envelopes: Sequence[Envelope], claimed: bool = True) -> None:
        """Published, or 503 (the claim stands: the next command on it publishes it)."""
        if claimed:
            failpoints.reach("claimed")  # the fault suite's crash between claim and publish
        await publish_or_refuse(self.producer, envelopes)

    async def _flush(self, outbox: Sequence[Envelope], visit: str, rev: int) -> None:
        """Publish what an earlier claim on a visit left in its outbox (the same ids)."""
        if outbox:
            await self._publish(outbox, claimed=False)
            await self.store.released_visit(visit, rev)


def _millis(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def visit_out(visit: Visit) -> dict[str, Any]:
    """A visit as the API shows it."""
    return {
        "visit_id": visit.id,
        "grid": visit.grid,
        "staff": visit.staff,
        "at": visit.at,
        "households": list(visit.households),
        "findings": [
            {
                "index": i,
                "type": f.type.value,
                "text": f.text,
                "household": f.household,
                "case_id": f.case_id,
                "kind": f.kind,
            }
            for i, f in enumerate(visit.findings)
        ],
        "logged_at": visit.logged_at,
    }
