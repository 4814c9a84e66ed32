"""The read side shared by all services: typed, read-only reads of the case projection.

The projections service is the only writer of the `cases` collection; every other service
reads it through `CaseReader`, which answers with typed values (`CaseRecord`, `CaseView`,
`Candidate`), never raw documents, and takes typed queries (`CaseQuery`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from gridloop.cases.record import CaseRecord
from gridloop.cases.view import CaseView, PendingRequest
from gridloop.lifecycle import OPEN_STATES, State
from gridloop.mongo import Document
from schemas.events import Channel, Point

# A document whose first event is still being written has no state yet: not a case.
_IS_CASE: Document = {"state": {"$exists": True}}
_NOT_INTERNAL = {"near": 0, "open_near": 0}
# What a tier office's queues ask first: the mark of their indexes, which hold disputes
# alone (`services.projections.store.MARKED`).
DISPUTES: Document = {"kind": "dispute"}
# A queue's rows: no cell keys, no reporter (a desk lists cases; the case page shows more).
_QUEUE = _NOT_INTERNAL | {"reporter": 0}
# A map's dots: no timeline either (a dot shows the case's number, class and light).
DOTS = _QUEUE | {"timeline": 0, "description": 0, "media": 0, "address": 0}
# The channels of citizens' reports, which supervisors verify first (核实).
_CITIZENS = tuple(c for c in Channel if c is not Channel.supervisor)
# A deadline-ordered queue is read in windows from now (`CaseReader._windows`).
_FIRST_WINDOW = timedelta(minutes=15)
_HORIZON = timedelta(days=400)
# The open states whose cases have a handling deadline: read in windows of it.
_TIMED = frozenset({State.dispatched, State.parked, State.handled})
_ANY = frozenset(State)


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
        wanted: Document = {"grid_code": {"$in": list(grids)}} if grids is not None else {}
        queries = [{"state": "reported", "channel": c.value} | wanted for c in _CITIZENS]
        found = await self._merged(queries, "verification_due", limit, _NOT_INTERNAL)
        return _no_disputes(found)

    async def awaiting_check(self, grids: Sequence[str] | None, limit: int) -> list[CaseRecord]:
        """Handled cases awaiting a supervisor's on-site check (核查), longest waiting
        first (by their last change); in `grids` only if given."""
        wanted: Document = {"grid_code": {"$in": list(grids)}} if grids is not None else {}
        return await self._merged(
            [{"state": "handled"} | wanted], "updated_at", limit, _NOT_INTERNAL
        )

    async def awaiting_filing(self, limit: int) -> list[CaseRecord]:
        """Reports awaiting a filing decision: verified citizen reports and supervisors'
        reports, oldest first."""
        queries = [{"state": "verified"}, {"state": "reported", "channel": "supervisor"}]
        return _no_disputes(await self._merged(queries, "reported_at", limit, _NOT_INTERNAL))

    async def of_department(
        self,
        department: str,
        states: Sequence[State],
        limit: int,
        now: datetime | None = None,
        where: Document | None = None,
        fields: Document = _QUEUE,
    ) -> list[CaseRecord]:
        """The cases `department` leads or assists in `states` (and `where`: equalities,
        say a class; `fields`: what of each, `DOTS` for a map), by deadline: those overdue
        first (when more than `limit` are, the most recently overdue), then the soonest due
        (`_around`)."""
        at, wanted = now or datetime.now(UTC), frozenset(states)
        found: dict[str, CaseRecord] = {}
        for holds in ("department", "assisting"):
            # The states are kept here, not asked of the database: a filter with `$in`
            # beside the index's fields makes SecantusDB read every case.
            query = {holds: department} | (where or {})
            for case in await self._around(query, at, limit, wanted, fields):
                found.setdefault(case.case_id, case)
        return _by_deadline(found.values())[:limit]

    async def in_states(self, states: Sequence[State], limit: int) -> list[CaseRecord]:
        """Cases in `states`, longest waiting first (by their last change)."""
        return await self._merged([{"state": s.value} for s in states], "updated_at", limit)

    async def with_pending_request(self, now: datetime, limit: int) -> list[CaseRecord]:
        """Cases with a request awaiting the shift lead (a department's, or an operator's
        void), by the case's deadline (`_around`: those already overdue, then the soonest
        due, then those without one), since what an extension or a parking would move
        matters most nearest the deadline. One mark for every kind of request
        (`requested`): one queue read in windows, not one a kind (most of them empty)."""
        return (await self._around({"requested": True}, now, limit, _ANY))[:limit]

    async def ended_before(self, case_ids: Sequence[str], cutoff: datetime) -> list[str]:
        """Which of `case_ids` ended before `cutoff`: closed (rated since or not), voided or
        answered directly then, and not reopened. What the retention of reporters' contacts
        counts from."""
        ended = []
        for states, at in (
            ((State.closed, State.evaluated), "closed_at"),
            ((State.voided,), "voided_at"),
            ((State.answered,), "answered_at"),
        ):
            query = {
                "_id": {"$in": list(case_ids)},
                "state": {"$in": [s.value for s in states]},
                at: {"$lt": cutoff},
            }
            ended += [d["_id"] async for d in self._cases.find(query, {"_id": 1})]
        return ended

    async def urged(self, limit: int) -> list[CaseRecord]:
        """Open cases with a 督办 in their timeline (answered or not), latest change first."""
        # One equality the index serves (the projection marks an urged case); the states
        # are kept here: `$in` beside it makes SecantusDB read every case.
        found = self._cases.find({"urged": True}, _QUEUE).sort("updated_at", -1)
        read = [CaseRecord.model_validate(d) async for d in found]
        return [c for c in read if c.state in OPEN_STATES][:limit]

    async def overdue(self, now: datetime, limit: int) -> list[CaseRecord]:
        """Dispatched cases past their handling deadline, the most recently overdue first
        (older ones have been escalated up the ladder)."""
        query = {"state": State.dispatched.value}
        return await self._windows(query, now, limit, backward=True)

    async def open_cases(
        self, now: datetime, limit: int, where: Document | None = None, fields: Document = DOTS
    ) -> list[CaseRecord]:
        """Open cases for the map (`where`: equalities, say a class): of each open state
        with a handling deadline, those nearest it (`_around`); of the others (reports
        awaiting verification or filing, cases awaiting dispatch), the latest changed (in
        windows of `updated_at`, as of deadlines). `limit` of each state at most."""
        found: list[CaseRecord] = []
        for state in sorted(OPEN_STATES):
            query = {"state": state.value} | (where or {})
            if state in _TIMED:  # the state is asked of the database: nothing left to keep
                found += await self._around(query, now, limit, _ANY, fields)
            else:
                found += await self._windows(
                    query, now, limit, _ANY, backward=True, key="updated_at", fields=fields
                )
        return found

    async def _around(
        self,
        query: Document,
        now: datetime,
        limit: int,
        states: frozenset[State],
        fields: Document = _QUEUE,
    ) -> list[CaseRecord]:
        """Up to `limit` cases of `query` in `states` overdue at `now` (the most recent)
        and `limit` due after it (the soonest), by deadline; any without a deadline last."""
        overdue = await self._windows(query, now, limit, states, backward=True, fields=fields)
        undated = self._cases.find(query | {"deadline": None}, fields).limit(limit)
        rest = [CaseRecord.model_validate(d) async for d in undated]  # none, when all is well
        rest = [c for c in rest if c.state in states]
        due = await self._windows(query, now, limit, states, fields=fields)
        return _by_deadline([*overdue, *due, *rest])

    async def _windows(
        self,
        query: Document,
        start: datetime,
        limit: int,
        states: frozenset[State] = _ANY,
        backward: bool = False,
        key: str = "deadline",
        fields: Document = _QUEUE,
    ) -> list[CaseRecord]:
        """The `limit` cases of `query` in `states` whose deadlines (or other time `key`)
        lie nearest `start` on one side, nearest first, read in windows of that time: the
        first a quarter of an hour, each next as wide as the cases found so far say the
        rest needs (×1.5 for room), from a quarter to four times the last (`_grown`).

        Why windows: a query's cost is the cases it reads, not the ones it returns, and
        the embedded database (SecantusDB) reads every case its index finds before it
        sorts and limits: a department's queue read 12,800 cases for 100 rows. Deadlines
        cluster near now, so a few short windows hold the rows a page shows; beyond the
        horizon one last query takes the rest. Without `states` to keep, a window asks for
        no more than it still needs (what is read but not sent is not decoded either)."""
        found: list[CaseRecord] = []
        edge, width = start, _FIRST_WINDOW
        while len(found) < limit:
            far = edge - width if backward else edge + width
            beyond = abs(far - start) > _HORIZON
            lo, hi = (far, edge) if backward else (edge, far)
            bounds = {"$lt" if backward else "$gte": edge} if beyond else {"$gte": lo, "$lt": hi}
            cursor = self._cases.find(query | {key: bounds}, fields)
            cursor = cursor.sort(key, -1 if backward else 1)
            if states == _ANY:  # kept as read: the window's first `need` are the nearest
                cursor = cursor.limit(limit - len(found))
            read = [CaseRecord.model_validate(d) async for d in cursor]
            kept = [c for c in read if c.state in states]
            found += kept
            if beyond:
                break
            edge, width = far, width * _grown(len(kept), limit - len(found))
        return found[:limit]

    async def of_tier_office(self, office: str, limit: int) -> list[CaseRecord]:
        """A tier office's disputes (矛盾纠纷): those it holds open, and those it was overdue
        on (held before or now), oldest report first."""
        queries = [
            DISPUTES | {"tier_office": office, "state": "reported"},
            DISPUTES | {"tier_office": office, "state": "mediating"},
            DISPUTES | {"tiers_overdue": office},
        ]
        return await self._merged(queries, "reported_at", limit, _QUEUE)

    async def closed_by_office(self, office: str, limit: int) -> list[CaseRecord]:
        """The disputes a tier office closed (矛盾纠纷, 已调结), the latest closed first."""
        # The office's closed disputes, as many as it ever closed: a tier office closes
        # hundreds a year, not a city's cases.
        query = DISPUTES | {"tier_office": office, "state": State.closed.value}
        found = self._cases.find(query, _QUEUE).sort("closed_at", -1).limit(limit)
        return [CaseRecord.model_validate(d) async for d in found]

    async def _merged(
        self, queries: Sequence[Document], key: str, limit: int, fields: Document = _QUEUE
    ) -> list[CaseRecord]:
        """The first `limit` cases by `key` of several queries, each an equality on indexed
        fields (`CaseStore.create_indexes`). Not one query with `$in`, `$or` or `$exists`:
        an embedded database (SecantusDB) serves those by reading every case, and any
        server reads an index's equality prefix cheaper than its union."""
        found: dict[str, CaseRecord] = {}
        for query in queries:
            cursor = self._cases.find(query, fields).sort(key, 1).limit(limit)
            async for doc in cursor:
                found.setdefault(doc["_id"], CaseRecord.model_validate(doc))
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(found.values(), key=lambda r: getattr(r, key) or far)[:limit]

    async def near(self, keys: Sequence[str], limit: int) -> list[Candidate]:
        """The open cases holding one of the cell `keys` (`gridloop.nearby`): an equality
        on an indexed key, which every MongoDB-protocol server serves without a scan. An
        ended case has none (`open_near`): the cases read are the open ones of the cells,
        whatever the history, so `limit` cuts none of them off."""
        fields = {"point": 1, "reported_at": 1, "kind": 1, "class_code": 1, "state": 1}
        found = self._cases.find({"open_near": {"$in": list(keys)}}, fields).limit(limit)
        return [_candidate(d) async for d in found if "state" in d]


def _no_disputes(cases: list[CaseRecord]) -> list[CaseRecord]:
    """A reported dispute is its grid's to mediate (docs/disputes.md): no verification or
    filing task of anyone's (kept out after the read: an inequality beside the indexed
    equalities would make SecantusDB read every case)."""
    return [c for c in cases if c.kind != "dispute"]


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
        reachable=bool((doc.get("reporter") or {}).get("contact")),
        merged_into=doc.get("merged_into"),
        closed_at=doc.get("closed_at"),
        parked_at=doc.get("parked_at"),
    )


def _grown(kept: int, need: int) -> float:
    """How much wider the next window is: as the last one's density says `need` more take
    (half again for room), within a quarter and four times; sixteen times after nothing
    (a queue with few cases reaches its far ones in a few reads)."""
    return 16.0 if kept == 0 else min(4.0, max(0.25, 1.5 * need / kept))


def _by_deadline(cases: Iterable[CaseRecord]) -> list[CaseRecord]:
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(cases, key=lambda r: r.deadline or far)
