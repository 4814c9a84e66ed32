"""The audit trail: who did what to which case, when and why; who was turned away; who read
a reporter's name or phone, or a photo or voice note; whose contact was erased. One MongoDB
collection, `audit`, four kinds of record:

- `action`: every accepted action is an event on Kafka carrying its `actor`; the projections
  service copies each into the trail keyed by the event id (`services/projections/audit.py`),
  so a replay or a rebuild writes the very same records, never a second one;
- `refused`: a 401 or 403 answered by the HTTP door of any service (`gridloop/http.py`);
- `read`: a staff read of a case that showed the reporter's name or phone, and every read
  of an uploaded photo or voice note (intake; `media_id`, and the case it belongs to);
- `erasure`: a reporter's contact erased (intake's API or `gridloop contacts erase|expire`):
  who asked, for whom (`requested_by`), the names of the fields erased, never their values.

What a record never holds: request bodies, query strings, client addresses, names, phones.
The actor is a role and a credential's subject; a read names the fields shown, not their
values. `GET /audit` (intake, admin and supervision centre) and `gridloop audit` read it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from gridloop.auth import Principal, Role, require
from gridloop.errors import refusals
from gridloop.mongo import Document

COLLECTION = "audit"
AUDITORS = (Role.admin, Role.supervision_centre)
MAX_RECORDS = 1000


class AuditTrail:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.records = db[COLLECTION]

    async def create_indexes(self) -> None:
        await self.records.create_index([("case_id", ASCENDING), ("at", ASCENDING)])
        await self.records.create_index([("actor.id", ASCENDING), ("at", ASCENDING)])
        await self.records.create_index([("at", ASCENDING)])

    async def add(self, record: Document) -> bool:
        """Keep `record`; False if a record of that id is already kept (a replayed event)."""
        try:
            await self.records.insert_one(record)
        except DuplicateKeyError:
            return False
        return True

    async def find(
        self,
        case_id: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Document]:
        """Records oldest first: page on with `since` = the last record's `at`."""
        query: Document = {}
        if case_id:
            query["case_id"] = case_id
        if subject:
            query["actor.id"] = subject
        if since:
            query["at"] = {"$gte": since}
        cursor = self.records.find(query).sort([("at", ASCENDING), ("_id", ASCENDING)])
        return [doc async for doc in cursor.limit(limit)]


def _actor(who: Principal | None) -> Document:
    if who is None:
        return {"role": None, "id": None}
    actor: Document = {"role": who.role.value, "id": who.subject}
    return actor | {"person": who.person} if who.person else actor


def _record(
    kind: str, service: str, who: Principal | None, action: str, case_id: str | None
) -> Document:
    """What every HTTP-layer record holds: a fresh id, when, where, who and what."""
    return {
        "_id": str(uuid.uuid4()),
        "kind": kind,
        "at": datetime.now(UTC),
        "service": service,
        "actor": _actor(who),
        "action": action,
        "case_id": case_id,
    }


def refusal(
    service: str,
    action: str,
    case_id: str | None,
    who: Principal | None,
    status: int,
    reason: str,
) -> Document:
    """A 401 or 403: `who` is the credential presented (None: none, or an unknown one)."""
    return _record("refused", service, who, action, case_id) | {"status": status, "reason": reason}


def personal_read(service: str, who: Principal, case_id: str, fields: list[str]) -> Document:
    """`who` was shown the reporter's `fields` (names of fields, never their values)."""
    return _record("read", service, who, "read personal data", case_id) | {"fields": fields}


def erasure(
    service: str, who: Principal | None, case_id: str, fields: list[str], requested_by: str
) -> Document:
    """A reporter's contact erased: the names of its `fields` (never their values); `who`
    None for a command run by an operator (`gridloop contacts …`)."""
    record = _record("erasure", service, who, "erase contact", case_id)
    return record | {"fields": fields, "requested_by": requested_by}


def household_read(service: str, who: Principal, grid: str, fields: list[str]) -> Document:
    """`who` was shown the `fields` (names, never values) of a grid's household register:
    the households' names, where the city keeps them (services/grid)."""
    return _record("read", service, who, "read household names", None) | {
        "grid": grid,
        "fields": fields,
    }


def media_read(service: str, who: Principal, media_id: str, case_id: str | None) -> Document:
    """`who` was sent an upload (a photo or voice note) of `case_id`."""
    return _record("read", service, who, "read media", case_id) | {"media_id": media_id}


def _trail(request: Request) -> AuditTrail:
    trail: AuditTrail = request.app.state.audit
    return trail


router = APIRouter(tags=["audit"])
Auditor = Annotated[Principal, Depends(require(*AUDITORS))]


@router.get("/audit", responses=refusals(401, 403))
async def read_audit(
    request: Request,
    _: Auditor,
    case: Annotated[str | None, Query(max_length=100, description="a case id")] = None,
    subject: Annotated[str | None, Query(max_length=100, description="who acted")] = None,
    since: Annotated[datetime | None, Query(description="records at or after")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RECORDS)] = 100,
) -> list[dict[str, Any]]:
    """The audit trail, oldest first: accepted actions (events), refused attempts, reads
    of reporters' personal data and of uploads. Admin and supervision centre only."""
    if since is not None and since.utcoffset() is None:
        since = since.replace(tzinfo=UTC)  # a time without an offset is UTC
    records = await _trail(request).find(case, subject, since, limit)
    encoded: list[dict[str, Any]] = jsonable_encoder(records)
    return encoded


def signing(
    service: str, username: str, who: Principal | None, action: str, address: str
) -> Document:
    """A person's `signed in`, `sign-in refused`, `sign-in throttled` or `signed out`."""
    return _record("sign-in", service, who, action, None) | {
        "username": username,
        "address": address,
    }
