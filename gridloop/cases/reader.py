"""The read side shared by all services: typed, read-only reads of the case projection.

The projections service is the only writer of the `cases` collection; every other service
reads it through `CaseReader`, which answers with typed values (`CaseRecord`, `CaseView`,
`Candidate`), never raw documents, and takes typed queries (`CaseQuery`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from gridloop.cases.record import CaseRecord
from gridloop.cases.view import CaseView, PendingRequest
from gridloop.lifecycle import OPEN_STATES, State
from gridloop.mongo import Document
from schemas.events import CaseUrged, Channel, Point

URGED = CaseUrged.ce_type

# A document whose first event is still being written has no state yet: not a case.
_IS_CASE: Document = {"state": {"$exists": True}}
_NOT_INTERNAL = {"near": 0}


@dataclass(frozen=True)
class CaseQuery:
    """Which cases: by id (overriding the rest), by class, state and reporting time."""

    ids: tuple[str, ...] = ()
    classes: tuple[tuple[str, str], ...] = ()  # (kind, class code)
    states: tuple[str, ...] = ()
    reported_since: datetime | None = None
    reported_until: datetime | None = None


@dataclass(frozen=True)
class Candidate:
    """A case near a new report, as the duplicate search weighs it."""

    case_id: str
    kind: str
    class_code: str
    state: State
    lon: float
    lat: float
    reported_at: datetime


class CaseReader:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._cases = db["cases"]

    async def record(self, case_id: str) -> CaseRecord | None:
        doc = await self._cases.find_one({"_id": case_id} | _IS_CASE, _NOT_INTERNAL)
        return CaseRecord.model_validate(doc) if doc is not None else None

    async def records(self, case_ids: Iterable[str]) -> dict[str, CaseRecord]:
        """The cases of `case_ids` that are projected, by id, in one round trip."""
        ids = list(dict.fromkeys(case_ids))
        if not ids:
            return {}
        found = self._cases.find({"_id": {"$in": ids}} | _IS_CASE, _NOT_INTERNAL)
        # Room for one more than can match: the server sees the end within the first batch
        # and closes the cursor, so no getMore follows (a full batch of 101 by default).
        return {
            d["_id"]: CaseRecord.model_validate(d) async for d in found.batch_size(len(ids) + 1)
        }

    async def view(self, case_id: str) -> CaseView | None:
        """The case as projected, as commands decide on it (a case from before heads)."""
        doc = await self._cases.find_one({"_id": case_id} | _IS_CASE)
        return view_of(doc) if doc is not None else None

    async def merged_into(self, case_id: str) -> int:
        """How many reports were merged into the case (its duplicates)."""
        return await self._cases.count_documents({"merged_into": case_id})

    async def search(self, query: CaseQuery, limit: int) -> list[CaseRecord]:
        """The cases `query` finds, newest report first."""
        found = self._cases.find(_filter(query), _NOT_INTERNAL | {"reporter": 0})
        return [
            CaseRecord.model_validate(d) async for d in found.sort("reported_at", -1).limit(limit)
        ]

    async def awaiting_verification(
        self, grids: Sequence[str] | None, limit: int
    ) -> list[CaseRecord]:
        """Citizen reports awaiting verification (核实), soonest due first; in `grids` only
        if given."""
        query: Document = {"state": "reported", "channel": {"$ne": "supervisor"}}
        if grids is not None:
            query["grid_code"] = {"$in": list(grids)}
        found = self._cases.find(query, _NOT_INTERNAL).sort("verification_due", 1).limit(limit)
        return [CaseRecord.model_validate(d) async for d in found]

    async def awaiting_filing(self, limit: int) -> list[CaseRecord]:
        """Reports awaiting a filing decision: verified citizen reports and supervisors'
        reports, oldest first."""
        query = {"$or": [{"state": "verified"}, {"state": "reported", "channel": "supervisor"}]}
        found = self._cases.find(query, _NOT_INTERNAL).sort("reported_at", 1).limit(limit)
        return [CaseRecord.model_validate(d) async for d in found]

    async def of_department(
        self, department: str, states: Sequence[State], limit: int
    ) -> list[CaseRecord]:
        """The cases `department` leads or assists in `states`, soonest deadline first (two
        equality queries: a top-level `$or` finds no index on SecantusDB)."""
        wanted = {"state": {"$in": [s.value for s in states]}}
        found: dict[str, CaseRecord] = {}
        for holds in ({"department": department}, {"assisting": department}):
            cursor = self._cases.find(wanted | holds, _NOT_INTERNAL | {"reporter": 0})
            async for doc in cursor.sort("deadline", 1).limit(limit):
                found.setdefault(doc["_id"], CaseRecord.model_validate(doc))
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(found.values(), key=lambda r: r.deadline or far)[:limit]

    async def in_states(self, states: Sequence[State], limit: int) -> list[CaseRecord]:
        """Cases in `states`, longest waiting first (by their last change)."""
        query = {"state": {"$in": [s.value for s in states]}}
        found = self._cases.find(query, _NOT_INTERNAL | {"reporter": 0})
        return [
            CaseRecord.model_validate(d) async for d in found.sort("updated_at", 1).limit(limit)
        ]

    async def with_pending_request(self, limit: int) -> list[CaseRecord]:
        """Cases whose department's extension or parking request awaits the command
        centre, oldest first."""
        query = {"pending_request.request_id": {"$exists": True}}
        found = self._cases.find(query, _NOT_INTERNAL | {"reporter": 0})
        return [
            CaseRecord.model_validate(d) async for d in found.sort("updated_at", 1).limit(limit)
        ]

    async def urged(self, limit: int) -> list[CaseRecord]:
        """Open cases with a 督办 in their timeline (answered or not), latest change first."""
        query = {
            "timeline.type": {"$in": [URGED, "urged"]},
            "state": {"$in": [s.value for s in OPEN_STATES]},
        }
        found = self._cases.find(query, _NOT_INTERNAL | {"reporter": 0})
        return [
            CaseRecord.model_validate(d) async for d in found.sort("updated_at", -1).limit(limit)
        ]

    async def overdue(self, now: datetime, limit: int) -> list[CaseRecord]:
        """Dispatched cases past their handling deadline, the latest first."""
        query = {"state": State.dispatched.value, "deadline": {"$lt": now}}
        found = self._cases.find(query, _NOT_INTERNAL | {"reporter": 0})
        return [CaseRecord.model_validate(d) async for d in found.sort("deadline", 1).limit(limit)]

    async def near(self, keys: Sequence[str], limit: int) -> list[Candidate]:
        """The cases holding one of the cell `keys` (`gridloop.nearby`): an equality on an
        indexed key, which every MongoDB-protocol server serves without a scan."""
        fields = {"point": 1, "reported_at": 1, "kind": 1, "class_code": 1, "state": 1}
        found = self._cases.find({"near": {"$in": list(keys)}}, fields).limit(limit)
        return [_candidate(d) async for d in found if "state" in d]


def _filter(query: CaseQuery) -> Document:
    if query.ids:
        return {"_id": {"$in": list(query.ids)}} | _IS_CASE
    found: dict[str, Any] = _IS_CASE | {"class_code": {"$exists": True}}
    if query.classes:
        found["$or"] = [{"kind": k, "class_code": c} for k, c in query.classes]
    if query.states:
        found["state"] = {"$in": list(query.states)}
    when: dict[str, datetime] = {}
    if query.reported_since:
        when["$gte"] = query.reported_since
    if query.reported_until:
        when["$lte"] = query.reported_until
    if when:
        found["reported_at"] = when
    return found


def _candidate(doc: Document) -> Candidate:
    lon, lat = doc["point"]["coordinates"]
    return Candidate(
        doc["_id"],
        doc["kind"],
        doc["class_code"],
        State(doc["state"]),
        lon,
        lat,
        doc["reported_at"],
    )


def view_of(doc: Document) -> CaseView:
    """A projected case document as the view commands decide on."""
    pending = doc.get("pending_request")
    coordinates = (doc.get("point") or {}).get("coordinates")
    return CaseView(
        case_id=doc["_id"],
        state=State(doc["state"]),
        version=doc["version"],
        kind=doc.get("kind"),
        class_code=doc.get("class_code"),
        grid_code=doc.get("grid_code"),
        department=doc.get("department"),
        component_id=doc.get("component_id"),
        urgency=doc.get("urgency"),
        assisting=tuple(doc.get("assisting") or ()),
        deadline=doc.get("deadline"),
        pending_request=PendingRequest(**pending) if pending else None,
        point=Point(lon=coordinates[0], lat=coordinates[1]) if coordinates else None,
        channel=Channel(doc["channel"]) if doc.get("channel") else None,
        reporter_id=(doc.get("reporter") or {}).get("id"),
        merged_into=doc.get("merged_into"),
        closed_at=doc.get("closed_at"),
        parked_at=doc.get("parked_at"),
    )
