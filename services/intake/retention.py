"""Erasing reporters' contacts: one case's on request, and every contact whose case ended
longer ago than the pack's `intake.contact_retention` (docs/personal-data.md). Shared by the
API (`erasure.py`), intake's hourly sweep (`Retention`) and `gridloop contacts erase|expire`.
Every erasure is an audit record naming the fields, never their values."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gridloop.audit import AuditTrail, erasure
from gridloop.auth import Principal
from gridloop.cases.reader import CaseReader
from gridloop.contacts import contact_id
from gridloop.contacts.store import ContactStore

log = logging.getLogger(__name__)
PAGE = 500


async def erase_contact(contacts: ContactStore, case_id: str) -> list[str] | None:
    """Shred the contact of `case_id`'s reporter: the names of the fields it held, None if
    none was kept."""
    refs = sorted({contact_id(case_id), *await contacts.refs_of_cases([case_id])})
    kept = await contacts.get_many(refs)
    if not await contacts.erase(refs):
        return None
    return sorted({f for contact in kept.values() for f in contact.fields()})


async def erase_audited(
    contacts: ContactStore,
    trail: AuditTrail,
    case_id: str,
    who: Principal | None,
    requested_by: str,
    service: str,
) -> list[str] | None:
    """An erasure request: the contact shredded, the request on the audit trail."""
    fields = await erase_contact(contacts, case_id)
    await trail.add(erasure(service, who, case_id, fields or [], requested_by))
    return fields


async def expire(
    cases: CaseReader,
    contacts: ContactStore,
    trail: AuditTrail,
    retention: timedelta,
    now: datetime,
    service: str,
) -> list[str]:
    """Erase the contacts of every case that ended before `now - retention`; their case ids."""
    cutoff, after, erased = now - retention, "", []
    while page := await contacts.kept_before(cutoff, after, PAGE):
        after = page[-1]["_id"]
        for case_id in await cases.ended_before([d["case_id"] for d in page], cutoff):
            fields = await erase_contact(contacts, case_id)
            if fields is not None:  # another sweep may have erased it just now
                await trail.add(erasure(service, None, case_id, fields, "retention"))
                erased.append(case_id)
    return erased


@dataclass
class Retention:
    """Intake's sweep: every `every` seconds, the contacts past their retention erased."""

    cases: CaseReader
    contacts: ContactStore
    trail: AuditTrail
    retention: timedelta
    clock: Callable[[], datetime]
    every: float = 3600.0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                erased = await expire(
                    self.cases, self.contacts, self.trail, self.retention, self.clock(), "intake"
                )
                if erased:
                    log.info("retention: erased the contacts of %d ended case(s)", len(erased))
            except Exception:  # a database outage: the next sweep tries again
                log.warning("retention: sweep failed; trying again", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)
