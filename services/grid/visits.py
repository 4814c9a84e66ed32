"""Visits (走访), the service layer: a visit logged, a finding made a case or a dispute,
coverage — each command on one path, load → decide (the pure `visiting.py`, `coverage.py`) →
claim → publish → remember, on the register's `Households`.

- **Who**: the grid's own staff log visits and make findings cases; visits and findings are
  household data (`HOUSEHOLD_READERS`); coverage also goes to the shift lead.
- **Remembered**: a visit logged under an `Idempotency-Key` has an id derived from the key
  and its sender, so the handheld sending a visit made offline twice finds the first (the
  same answer); a finding reported twice answers with the case it became.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from gridloop.access import Principal, Role
from gridloop.refusal import Refused, Why, conflict, invalid, not_found
from schemas.envelope import Envelope
from services.grid import coverage as cover
from services.grid import visiting as core
from services.grid.coverage import Coverage
from services.grid.doors import may_act
from services.grid.households import COVERAGE_READERS, HOUSEHOLD_READERS, Households
from services.grid.visiting import LogVisit, ReportFinding, Visit

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


class Visits(Households):
    """Visits, findings and coverage, beside the register."""

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
            may_act(ask.who, visit.grid, theirs)
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
        span = cover.period_of(period, self.pack.city.timezone)
        await self.seeded()
        register = await self.store.register(grid)
        visits = await self.store.visits_of(grid, span.start, span.end)
        return cover.coverage(grid, span, register, visits, self.now())

    # --- the log ---------------------------------------------------------------------------------

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
