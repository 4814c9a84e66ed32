"""The `cases` collection: idempotent writes of events, reads for APIs and commands."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from gridloop.cases.reader import DISPUTES
from gridloop.cases.view import REQUEST_KINDS
from gridloop.lifecycle import OPEN_STATES
from gridloop.mongo import Document, index_names, partial_index
from gridloop.nearby import keys_of
from schemas.envelope import Envelope
from schemas.events import CaseEvent, CaseReported, DepartmentRequest, SlaEvent, VoidRequest
from services.projections.core import (
    dispute_marks,
    facts,
    open_cells,
    reopening,
    request_change,
    sla_change,
    state_change,
    timeline_entry,
)

DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class Marked:
    """A desk's queue of the cases that carry a mark few cases do (a request waiting, 督办,
    a dispute): a partial index of those cases alone, so a case without the mark (most)
    costs it nothing when it is written. Its queries hold the `mark` as an equality (both
    MongoDB and SecantusDB read a partial index only for a query that implies its filter);
    the mark's field is not among its `keys` (SecantusDB leaves such a field out of the
    key prefix it looks up). It replaces the full index of the fields `replaces`."""

    name: str
    keys: tuple[str, ...]
    mark: Document
    replaces: tuple[str, ...]


MARKED = (
    Marked("deadline_1_requested", ("deadline",), {"requested": True}, ("requested", "deadline")),
    Marked("updated_at_1_urged", ("updated_at",), {"urged": True}, ("urged", "updated_at")),
    # A tier office's disputes: those it holds, those it was overdue on.
    Marked(
        "tier_office_1_state_1_reported_at_1_disputes",
        ("tier_office", "state", "reported_at"),
        DISPUTES,
        ("tier_office", "state", "reported_at"),
    ),
    Marked(
        "tiers_overdue_1_reported_at_1_disputes",
        ("tiers_overdue", "reported_at"),
        DISPUTES,
        ("tiers_overdue", "reported_at"),
    ),
)


class CaseStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.cases = db["cases"]

    async def create_indexes(self) -> None:
        # The desks' queues (`CaseReader`): each an equality on the leading fields, sorted
        # by the last. (`state, department`, `pending_request.kind, updated_at` and
        # `pending_request.kind, deadline` came first; kept where they exist, unused.)
        await self.mark_requested()
        for desk in (
            ("department", "deadline"),
            ("assisting", "deadline"),
            ("state", "deadline"),
            ("state", "updated_at"),
            ("state", "channel", "reported_at"),
        ):
            await self.cases.create_index([(name, ASCENDING) for name in desk])
        await self.marked_queues()
        # Intake's duplicate search (open cases of a class, recently reported): without it,
        # every report scans every case.
        await self.cases.create_index(
            [("class_code", ASCENDING), ("kind", ASCENDING), ("reported_at", ASCENDING)]
        )
        # Intake's duplicate search (and the console's similar cases) asks for the open
        # cases of a class in cells around a report (`gridloop.nearby`): an equality on a
        # key, which the index serves. (`near`, every case's keys, came first: kept where it
        # exists, unused.)
        await self.open_near_keys()

    async def marked_queues(self) -> None:
        """The queues of a mark few cases carry (`MARKED`), each a partial index in place
        of the full index of its fields."""
        for queue in MARKED:
            await partial_index(self.cases, queue.name, queue.keys, queue.mark, queue.replaces)

    async def mark_requested(self) -> int:
        """Mark the cases with a request waiting that were projected before the mark
        (`requested`, what the requests queue asks for); how many. Once: before the
        mark's index exists (what it creates is the sign it ran)."""
        if await index_names(self.cases) & {"requested_1_deadline_1", MARKED[0].name}:
            return 0
        waiting = {"pending_request.kind": {"$in": list(REQUEST_KINDS.values())}}
        done = await self.cases.update_many(waiting, {"$set": {"requested": True}})
        return done.modified_count

    async def open_near_keys(self) -> int:
        """Give the open cases projected before `open_near` their keys (the cases before
        `near` theirs first); how many. Once: before the index on `open_near` exists (what
        it creates is the sign it ran). A query by state, each an equality the index
        serves: the open cases alone are read, not the history."""
        if "open_near_1" in await index_names(self.cases):
            return 0
        await self.add_near_keys()
        given = 0
        for state in sorted(OPEN_STATES):
            done = await self.cases.update_many(
                {"state": state.value}, [{"$set": {"open_near": "$near"}}]
            )
            given += done.modified_count
        await self.cases.create_index([("open_near", ASCENDING)])
        return given

    async def add_near_keys(self, chunk: int = 1_000) -> int:
        """Give the cases projected before they had `near` keys theirs; how many. Once, in
        `open_near_keys`: the query reads every case."""
        added = 0
        while True:
            lacking = self.cases.find(
                {"near": {"$exists": False}, "point": {"$exists": True}},
                {"kind": 1, "class_code": 1, "point": 1},
            ).limit(chunk)
            writes = [
                UpdateOne(
                    {"_id": d["_id"]},
                    {
                        "$set": {
                            "near": keys_of(d["kind"], d["class_code"], *d["point"]["coordinates"])
                        }
                    },
                )
                async for d in lacking
            ]
            if not writes:
                return added
            await self.cases.bulk_write(writes, ordered=False)
            added += len(writes)

    async def apply(self, env: Envelope) -> bool:
        """Record `env` on its case; False if it was already there (a duplicate).

        Every step is idempotent and all run even for a duplicate: a crash between two of
        them is mended when the event is delivered again.
        """
        (where, change), *rest = _writes(env)
        try:
            result = await self.cases.update_one(where, change, upsert=True)
            added = result.modified_count == 1 or result.upserted_id is not None
        except DuplicateKeyError:
            added = False  # the case exists and already holds this event
        for where, change in rest + _late(env):
            await self.cases.update_one(where, change)
        return added

    async def apply_many(self, envs: Sequence[Envelope]) -> None:
        """`apply` every envelope, in order, in one ordered `bulk_write` (a consumer's poll).

        An event that is new and the newest of its case (the usual) is one write: the
        timeline entry, its facts and its change together, under both guards (not yet in
        the timeline; no newer version); a case's events one after the other in the poll
        are one write together (`_steps`). If a guard fails, the upsert fails on the case's
        `_id` and stops the bulk there; those events' writes are then sent one by one, as
        `apply` does them, with the rest of the poll after them."""
        pending = _steps(envs)
        while pending:
            try:
                await self.cases.bulk_write([op for op, _ in pending], ordered=True)
                return
            except BulkWriteError as exc:
                first = exc.details["writeErrors"][0]
                _, instead = pending[first["index"]]
                if first["code"] != DUPLICATE_KEY or instead is None:
                    raise
                pending = instead + pending[first["index"] + 1 :]

    async def get(self, case_id: str) -> Document | None:
        # A document whose first event is still being written has no state yet: not a case.
        return await self.cases.find_one({"_id": case_id, "state": {"$exists": True}})

    async def get_many(self, case_ids: Iterable[str]) -> dict[str, Document]:
        """The cases of `case_ids` that `get` would find, by id, in one round trip (a
        consumer's poll)."""
        ids = list(dict.fromkeys(case_ids))
        if not ids:
            return {}
        found = self.cases.find({"_id": {"$in": ids}, "state": {"$exists": True}})
        # Room for one more than can match: the server sees the end within the first batch
        # and closes the cursor, so no getMore follows (a full batch of 101 by default).
        return {doc["_id"]: doc async for doc in found.batch_size(len(ids) + 1)}


Write = tuple[Document, Document | list[Document]]  # filter, update (or update pipeline)
One = tuple[Document, Document]  # an event's writes as one: filter, update


def _writes(env: Envelope) -> list[Write]:
    """What one event writes on its case, the timeline's first (an upsert: it makes the
    document)."""
    case_id = env.data.case_id
    entry = {"$each": [timeline_entry(env)], "$sort": {"version": 1, "at": 1}}
    writes: list[Write] = [
        ({"_id": case_id, "timeline.event_id": {"$ne": env.id}}, {"$push": {"timeline": entry}})
    ]
    if fixed := facts(env):
        writes.append(({"_id": case_id}, {"$set": fixed}))
    if isinstance(env.data, CaseEvent):
        # Only a newer version moves the state: late arrivals from other topics don't.
        newer = {"_id": case_id, "version": {"$not": {"$gte": env.data.version}}}
        writes.append((newer, {"$set": state_change(env)}))
    elif isinstance(env.data, SlaEvent) and env.data.stage.value == "mediate":
        # A dispute's light is its tier's: a late fact of a tier it left changes nothing.
        current = {"_id": case_id, "tier_version": {"$not": {"$gt": env.data.case_version}}}
        writes.append((current, {"$set": sla_change(env.data)}))
    elif isinstance(env.data, SlaEvent):
        writes.append(({"_id": case_id}, {"$set": sla_change(env.data)}))
    elif isinstance(env.data, DepartmentRequest | VoidRequest) and (
        change := request_change(env.data)
    ):
        writes.append(({"_id": case_id, **change[0]}, {"$set": change[1]}))
    if marks := dispute_marks(env):
        writes.append(({"_id": case_id}, marks))
    if again := reopening(env):  # after the state it checks
        writes.append(again)
    return writes


# A bulk write, and what to send instead if it fails on the case's `_id` (a guard failed);
# None: such a failure is an error.
Step = tuple[UpdateOne, "list[Step] | None"]


def _steps(envs: Sequence[Envelope]) -> list[Step]:
    """A poll's writes for `apply_many`. Each event is one write if it can be, and the
    events of one case that come one after the other in the poll, newest last (a report and
    its filing, produced together), are one write together: every document rewrite costs
    each of the collection's indexes again."""
    steps: list[Step] = []
    run: list[tuple[Envelope, One]] = []
    for env in envs:
        write = _one_write(env)
        if run and (write is None or not _follows(run[-1], env, write)):
            steps.append(_together(run))
            run = []
        if write is None:
            steps += _alone(env)
        else:
            run.append((env, write))
    if run:
        steps.append(_together(run))
    return steps


def _one_write(env: Envelope) -> One | None:
    """The event's writes as one (the usual): under both guards (not yet in the timeline; no
    newer version); None when they cannot be (a request's or a reopening's guards,
    overlapping fields)."""
    (where, push), *rest = _writes(env)
    assert isinstance(push, dict)  # the timeline's push, never a pipeline
    sets: Document = {}
    for w, c in rest:
        if set(w) - {"_id", "version"} or not isinstance(c, dict) or set(c) != {"$set"}:
            return None  # a request's or a reopening's guards: not together
        if sets.keys() & c["$set"].keys():
            return None  # overlapping fields
        where = where | w
        sets |= c["$set"]
    return where, push | ({"$set": sets} if sets else {})


def _alone(env: Envelope) -> list[Step]:
    """The event's writes one by one, as `apply` makes them."""
    (where, push), *rest = _writes(env)
    alone: list[Step] = [(UpdateOne(where, push, upsert=True), [])]  # a duplicate: skipped
    return alone + [(UpdateOne(w, c), None) for w, c in rest + _late(env)]


def _late(env: Envelope) -> list[Write]:
    """What an event read after a newer one of its case still owes it, beyond its facts: a
    report read after its case's filing or dispatch (topics are read in no order, and a
    consumer that restarts may read one before the other) gives the case its cell keys
    for the duplicate search, if it never had them (an ended case has none: `[]`). Only
    written where the event's own write did not stand (`_alone`, `apply`): the newest
    report sets them with its state."""
    data = env.data
    if not isinstance(data, CaseReported):
        return []
    never = {"_id": data.case_id, "open_near": {"$exists": False}}
    return [(never, {"$set": open_cells(data, is_open=True)})]


def _follows(last: tuple[Envelope, One], env: Envelope, write: One) -> bool:
    """Whether `env` can be written together with the run ending in `last`: the same case,
    a newer version of it, and no field one sets inside a field the other sets."""
    before, (_, change) = last
    if not (isinstance(before.data, CaseEvent) and isinstance(env.data, CaseEvent)):
        return False
    if env.data.case_id != before.data.case_id or env.data.version <= before.data.version:
        return False
    ours, theirs = change.get("$set", {}).keys(), write[1].get("$set", {}).keys()
    return not any(a.startswith(b + ".") or b.startswith(a + ".") for a in ours for b in theirs)


def _together(run: list[tuple[Envelope, One]]) -> Step:
    """One write of a run of a case's events (later ones' fields over earlier ones', as
    written one after the other), under the first's guards and none of them in the
    timeline; if a guard fails, each event's writes alone."""
    instead = [step for env, _ in run for step in _alone(env)]
    if len(run) == 1:
        [(_, (where, change))] = run
        return UpdateOne(where, change, upsert=True), instead
    first = run[0][0].data
    assert isinstance(first, CaseEvent)
    where = {
        "_id": first.case_id,
        "timeline.event_id": {"$nin": [env.id for env, _ in run]},
        "version": {"$not": {"$gte": first.version}},
    }
    entries = [entry for _, (_, c) in run for entry in c["$push"]["timeline"]["$each"]]
    sets: Document = {}
    for _, (_, change) in run:
        sets |= change.get("$set", {})
    push = {"timeline": {"$each": entries, "$sort": {"version": 1, "at": 1}}}
    return UpdateOne(where, {"$push": push, "$set": sets}, upsert=True), instead
