"""Households and visits in MongoDB: `grid_households` (one document per door, with its
occupancy changes, its revision and an outbox) and `grid_visits` (one per visit, with its
findings, the fingerprint of the request that logged it, a revision and an outbox).

A command claims a document — inserts it, or updates it on the revision it decided on —
with the events it decided in the outbox; once Kafka acknowledged them the outbox is
emptied. An outbox found full (a crash between the claim and the publication) is published
by the next command that loads the document: the events keep their ids, consumers drop a
repeat. The pack seeds the register once (`seed`): a door with a document keeps it, so a
restart never undoes what the API changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from gridloop.citypack import CityPack
from gridloop.citypack.households import Occupancy
from gridloop.mongo import Document
from gridloop.visits import VISITS
from schemas.envelope import Envelope, decode, encode
from services.grid.doors import Household, from_pack
from services.grid.visiting import Finding, FindingType, Visit

SEED_BATCH = 1000  # doors a write when the pack seeds the register


@dataclass(frozen=True)
class Stored:
    """A document as loaded: its revision and the events of its last claim not known
    published (`outbox`)."""

    rev: int
    outbox: tuple[Envelope, ...]


@dataclass(frozen=True)
class StoredVisit(Stored):
    visit: Visit
    fingerprint: str


@dataclass(frozen=True)
class StoredHousehold(Stored):
    household: Household


class VisitStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.households = db["grid_households"]
        self.visits = db[VISITS]  # read by other services through gridloop.visits

    async def create_indexes(self) -> None:
        await self.households.create_index([("grid", ASCENDING)])
        await self.visits.create_index([("grid", ASCENDING), ("at", ASCENDING)])

    async def seed(self, pack: CityPack) -> int:
        """A document for each door of the pack's register that has none, in batches; how
        many. One read of the ids there first: a restart inserts nothing (and a generated
        district's tens of thousands of doors are not each refused as duplicates)."""
        there = {d["_id"] async for d in self.households.find({}, {"_id": 1})}
        docs = [
            _household_doc(from_pack(e), 1, ())  # revision 1: as the pack registered it
            for grid in pack.grids
            for e in pack.households.of(grid.code)
            if e.id not in there
        ]
        made = 0
        for start in range(0, len(docs), SEED_BATCH):
            try:
                result = await self.households.insert_many(
                    docs[start : start + SEED_BATCH], ordered=False
                )
                made += len(result.inserted_ids)
            except BulkWriteError as exc:  # another instance seeding at the same time
                made += int(exc.details.get("nInserted", 0))
        return made

    # --- the register ---------------------------------------------------------------------------

    async def register(self, grid: str) -> list[Household]:
        """Every door the grid's register has held (removed ones too), by building and door."""
        found = self.households.find({"grid": grid}).sort([("building", 1), ("door", 1)])
        return [_household(d) async for d in found]

    async def household(self, household_id: str) -> StoredHousehold | None:
        doc = await self.households.find_one({"_id": household_id})
        if doc is None:
            return None
        return StoredHousehold(doc["rev"], _outbox(doc), _household(doc))

    async def claim_household(
        self, household: Household, rev: int, outbox: Sequence[Envelope]
    ) -> bool:
        """Write `household` at revision `rev`: a new door at 1 (False if its id exists),
        else if its document is still at `rev - 1`; whether the claim stood."""
        doc = _household_doc(household, rev, outbox)
        if rev > 1:
            result = await self.households.replace_one({"_id": household.id, "rev": rev - 1}, doc)
            return result.modified_count == 1
        try:
            await self.households.insert_one(doc)
            return True
        except DuplicateKeyError:
            return False

    async def released_household(self, household_id: str, rev: int) -> None:
        await self.households.update_one({"_id": household_id, "rev": rev}, _EMPTIED)

    # --- visits ---------------------------------------------------------------------------------

    async def visit(self, visit_id: str) -> StoredVisit | None:
        doc = await self.visits.find_one({"_id": visit_id})
        if doc is None:
            return None
        return StoredVisit(doc["rev"], _outbox(doc), _visit(doc), doc["fp"])

    async def claim_visit(self, visit: Visit, fingerprint: str, outbox: Sequence[Envelope]) -> bool:
        """Insert the visit (revision 1); False when a visit of that id exists (the same
        request sent twice: the other one claimed it)."""
        doc = _visit_doc(visit) | {"rev": 1, "fp": fingerprint, "outbox": _records(outbox)}
        try:
            await self.visits.insert_one(doc)
            return True
        except DuplicateKeyError:
            return False

    async def claim_finding(
        self, visit_id: str, rev: int, index: int, finding: Finding, outbox: Sequence[Envelope]
    ) -> bool:
        """Record that finding `index` became a case, if the visit is still at `rev` and
        the finding not yet reported; whether the claim stood."""
        at = f"findings.{index}"
        result = await self.visits.update_one(
            {"_id": visit_id, "rev": rev, f"{at}.case_id": None},
            {
                "$set": {
                    f"{at}.case_id": finding.case_id,
                    f"{at}.kind": finding.kind,
                    "rev": rev + 1,
                    "outbox": _records(outbox),
                }
            },
        )
        return result.modified_count == 1

    async def released_visit(self, visit_id: str, rev: int) -> None:
        await self.visits.update_one({"_id": visit_id, "rev": rev}, _EMPTIED)

    async def visits_of(
        self, grid: str, start: datetime, end: datetime, limit: int = 0
    ) -> list[Visit]:
        """The grid's visits made in [start, end), the latest first."""
        query = {"grid": grid, "at": {"$gte": start, "$lt": end}}
        found = self.visits.find(query).sort([("at", -1), ("_id", 1)]).limit(limit)
        return [_visit(d) async for d in found]


_EMPTIED: Document = {"$set": {"outbox": []}}


def _records(outbox: Sequence[Envelope]) -> list[Document]:
    """Events as Kafka records, bytes as published (`gridloop.commands.mongo` keeps case
    outboxes the same way)."""
    out = []
    for env in outbox:
        _, value, headers = encode(env)
        out.append({"value": value, "headers": [[name, raw] for name, raw in headers]})
    return out


def _outbox(doc: Document) -> tuple[Envelope, ...]:
    return tuple(
        decode(r["value"], [(name, raw) for name, raw in r["headers"]])
        for r in doc.get("outbox") or ()
    )


def _household_doc(h: Household, rev: int, outbox: Sequence[Envelope]) -> Document:
    return {
        "_id": h.id,
        "grid": h.grid,
        "building": h.building,
        "door": h.door,
        "changes": [{"at": at, "occupancy": o.value} for at, o in h.changes],
        "since": h.since,
        "until": h.until,
        "name": h.name,
        "rev": rev,
        "outbox": _records(outbox),
    }


def _household(d: Document) -> Household:
    changes = tuple((c["at"], Occupancy(c["occupancy"])) for c in d["changes"])
    return Household(
        d["_id"], d["grid"], d["building"], d["door"], changes, d["since"], d["until"], d["name"]
    )


def _visit_doc(v: Visit) -> Document:
    findings: list[dict[str, Any]] = [
        {
            "type": f.type.value,
            "text": f.text,
            "household": f.household,
            "case_id": f.case_id,
            "kind": f.kind,
        }
        for f in v.findings
    ]
    return {
        "_id": v.id,
        "grid": v.grid,
        "staff": v.staff,
        "at": v.at,
        "households": list(v.households),
        "findings": findings,
        "logged_at": v.logged_at,
    }


def _visit(d: Document) -> Visit:
    findings = tuple(
        Finding(FindingType(f["type"]), f["text"], f["household"], f["case_id"], f["kind"])
        for f in d["findings"]
    )
    return Visit(
        d["_id"], d["grid"], d["staff"], d["at"], tuple(d["households"]), findings, d["logged_at"]
    )
