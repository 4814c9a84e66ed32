"""Heads in MongoDB (`case_heads`, one document per case): the claim is a conditional update
on the revision, or the insert of a new case's head (`_id` unique). Writers' watermarks in
`command_writers`, one document per process that claims.

    {_id, rev, view: {...}, outbox: [{value, headers}], by, outbox_at,
     answers: {key: {...}}, last: {...}, recent: [[rev, fingerprint], ...]}

The outbox holds the claimed events as Kafka records (bytes as published), so whoever
publishes them later sends exactly what the claim decided.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from gridloop.cases.view import CaseView, PendingRequest, TierSpell
from gridloop.commands.head import Answer, Claim, Head, Remembered, WriterMark
from gridloop.lifecycle import State
from gridloop.mongo import Document
from gridloop.together import Together
from schemas.envelope import Envelope, decode, encode
from schemas.events import Channel, Party, Point

DUPLICATE_KEY = 11000
RECENT = 8  # claims a head remembers by revision and request (a bulk write's outcome)


class MongoHeads:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.heads = db["case_heads"]
        self._writers = db["command_writers"]
        # Concurrent commands share round trips: their heads are read in one query, their
        # claims written in one bulk write (new cases' in one insert).
        self._loading: Together[str, Head | None] = Together(self._load_group)
        self._claiming: Together[Claim, bool] = Together(self.claim_many)

    async def create_indexes(self) -> None:
        # The relay's search for a dead writer's outboxes newer than its watermark.
        await self.heads.create_index([("by", ASCENDING), ("outbox_at", ASCENDING)])

    async def load(self, case_id: str) -> Head | None:
        return await self._loading(case_id)

    async def _load_group(self, case_ids: list[str]) -> list[Head | None]:
        found = await self.load_many(case_ids)
        return [found.get(case_id) for case_id in case_ids]

    async def load_many(self, case_ids: Iterable[str]) -> dict[str, Head]:
        ids = list(dict.fromkeys(case_ids))
        if not ids:
            return {}
        found = self.heads.find({"_id": {"$in": ids}}).batch_size(len(ids) + 1)
        return {doc["_id"]: _head(doc) async for doc in found}

    async def versions(self, case_ids: Iterable[str]) -> dict[str, int]:
        """The latest committed version of each case that has a head."""
        ids = list(dict.fromkeys(case_ids))
        if not ids:
            return {}
        found = self.heads.find({"_id": {"$in": ids}}, {"view.version": 1})
        return {doc["_id"]: doc["view"]["version"] async for doc in found.batch_size(len(ids) + 1)}

    async def adopt(self, view: CaseView) -> Head:
        try:
            await self.heads.insert_one({"_id": view.case_id, "rev": 1, "view": _view_doc(view)})
        except DuplicateKeyError:
            head = await self.load(view.case_id)
            assert head is not None
            return head
        return Head(view, 1)

    async def readopt(self, view: CaseView) -> None:
        unclaimed = {"_id": view.case_id, "recent": {"$exists": False}}
        await self.heads.update_one(unclaimed, {"$set": {"view": _view_doc(view)}})

    async def claim(self, claim: Claim) -> bool:
        return await self._claiming(claim)

    async def claim_many(self, claims: Sequence[Claim]) -> list[bool]:
        """Claims in one write (two of one case among them: one stands). When some fail,
        their heads are read again: a claim stood if the head's recent claims hold its
        revision with its request's fingerprint."""
        opening = [c for c in claims if c.rev == 1]
        stood = dict(zip(map(id, opening), await self._insert_many(opening), strict=True))
        # A case's claims in rounds, one a round: the writes of one bulk may all be matched
        # against the documents as they were before it (SecantusDB does so).
        for claiming in _rounds([c for c in claims if c.rev > 1]):
            writes = [UpdateOne(_at(c), _claimed(c)) for c in claiming]
            done = await self.heads.bulk_write(writes, ordered=False)
            if done.modified_count == len(claiming):
                stood |= {id(c): True for c in claiming}
            else:
                heads = await self.load_many(c.case_id for c in claiming)
                stood |= {id(c): _stands(c, heads.get(c.case_id)) for c in claiming}
        return [stood[id(c)] for c in claims]

    async def orphans(self, writer: str, after: datetime | None, limit: int) -> list[Head]:
        newer: Document = {"by": writer}
        if after is not None:
            newer["outbox_at"] = {"$gt": after}
        return [_head(doc) async for doc in self.heads.find(newer).limit(limit)]

    async def release(self, claims: Sequence[tuple[str, int]]) -> None:
        if claims:
            nobody = {"$set": {"by": None}}
            writes = [UpdateOne({"_id": case_id, "rev": rev}, nobody) for case_id, rev in claims]
            await self.heads.bulk_write(writes, ordered=False)

    async def beat(self, writer: str, through: datetime) -> None:
        alive = datetime.now(UTC)
        mark = {"$set": {"through": through, "alive": alive}}
        await self._writers.update_one({"_id": writer}, mark, upsert=True)

    async def writers(self) -> list[WriterMark]:
        return [
            WriterMark(doc["_id"], doc["through"], doc["alive"], doc.get("retired", False))
            async for doc in self._writers.find()
        ]

    async def retire(self, writer: str) -> None:
        done = {"$set": {"through": datetime.now(UTC), "retired": True}}
        await self._writers.update_one({"_id": writer}, done)

    async def _insert_many(self, claims: list[Claim]) -> list[bool]:
        if not claims:
            return []
        docs = [_opened(c) for c in claims]
        won = [True] * len(docs)
        try:
            await self.heads.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            for error in exc.details["writeErrors"]:
                if error["code"] != DUPLICATE_KEY:
                    raise
                won[error["index"]] = False
        return won


def _rounds(claims: list[Claim]) -> list[list[Claim]]:
    """`claims` in rounds with at most one claim of a case in each, in their order."""
    rounds: list[list[Claim]] = []
    for claim in claims:
        taken = (r for r in rounds if all(c.case_id != claim.case_id for c in r))
        free = next(taken, None)
        if free is None:
            rounds.append(free := [])
        free.append(claim)
    return rounds


def _at(claim: Claim) -> Document:
    """The head a claim is decided on: its case at the revision before. (An outbox still
    there was published by the claimer when it loaded the head: the claim replaces it.)"""
    return {"_id": claim.case_id, "rev": claim.rev - 1}


def _stands(claim: Claim, head: Head | None) -> bool:
    mine = (claim.rev, claim.remembered.fingerprint)
    return head is not None and mine in head.recent


def _claimed(claim: Claim) -> Document:
    """The update that makes `claim` the head (and, for a new case, its document)."""
    remembered = _remembered_doc(claim.remembered)
    changes: Document = {
        "rev": claim.rev,
        "view": _view_doc(claim.view),
        "outbox": [_record(env) for env in claim.outbox],
        "by": claim.by,
        "outbox_at": claim.remembered.at,
        "last": remembered,
    }
    if claim.key_id is not None:
        changes[f"answers.{claim.key_id}"] = remembered
    # The recent claims (revision, request): whether a claim of a bulk write stood.
    recent = {"$each": [[claim.rev, claim.remembered.fingerprint]], "$slice": -RECENT}
    update: Document = {"$set": changes, "$push": {"recent": recent}}
    if claim.forget:
        update["$unset"] = {f"answers.{key}": "" for key in claim.forget}
    return update


def _opened(claim: Claim) -> Document:
    """A new case's head document, as `_claimed` would make it."""
    changes = _claimed(claim)["$set"]
    answers = {
        k.removeprefix("answers."): v for k, v in changes.items() if k.startswith("answers.")
    }
    fields = {k: v for k, v in changes.items() if not k.startswith("answers.")}
    return {"_id": claim.case_id} | fields | {"answers": answers}


def _record(env: Envelope) -> Document:
    _, value, headers = encode(env)
    return {"value": value, "headers": [[name, raw] for name, raw in headers]}


def _head(doc: Document) -> Head:
    outbox = tuple(
        decode(r["value"], [(name, raw) for name, raw in r["headers"]])
        for r in doc.get("outbox") or ()
    )
    answers = {k: _remembered(v) for k, v in (doc.get("answers") or {}).items()}
    last = doc.get("last")
    view = _view(doc["_id"], doc["view"])
    recent = tuple((rev, fp) for rev, fp in doc.get("recent") or ())
    remembered = _remembered(last) if last else None
    by, at = doc.get("by"), doc.get("outbox_at")
    return Head(view, doc["rev"], outbox, answers, remembered, recent, by, at)


def _remembered_doc(r: Remembered) -> Document:
    return {"fp": r.fingerprint, "status": r.answer.status, "body": r.answer.body, "at": r.at}


def _remembered(doc: Document) -> Remembered:
    return Remembered(doc["fp"], Answer(doc["status"], doc["body"]), doc.get("at"))


def _view_doc(view: CaseView) -> Document:
    """The view as stored: its fields by name (the case id is the document's `_id`)."""
    doc = {f.name: getattr(view, f.name) for f in fields(CaseView) if f.name != "case_id"}
    pending, point = view.pending_request, view.point
    return doc | {
        "state": view.state.value,
        "assisting": list(view.assisting),
        "acknowledged": list(view.acknowledged),
        "pending_request": asdict(pending) if pending else None,
        "point": [point.lon, point.lat] if point else None,
        # A dispute's tiers, and who confirmed (tuples of values: stored as lists).
        "spells": [asdict(s) for s in view.spells],
        "explained_offices": list(view.explained_offices),
        "confirmed": [p.model_dump() for p in view.confirmed],
    }


def _view(case_id: str, doc: Document) -> CaseView:
    known = {f.name for f in fields(CaseView)}
    found = {k: v for k, v in doc.items() if k in known}
    pending, point, channel = doc.get("pending_request"), doc.get("point"), doc.get("channel")
    return CaseView(
        **found
        | {
            "case_id": case_id,
            "state": State(doc["state"]),
            "assisting": tuple(doc.get("assisting") or ()),
            "acknowledged": tuple(doc.get("acknowledged") or ()),
            "pending_request": PendingRequest(**pending) if pending else None,
            "point": Point(lon=point[0], lat=point[1]) if point else None,
            "channel": Channel(channel) if channel else None,
            "spells": tuple(TierSpell(**s) for s in doc.get("spells") or ()),
            "explained_offices": tuple(doc.get("explained_offices") or ()),
            "confirmed": tuple(Party(**p) for p in doc.get("confirmed") or ()),
        }
    )


def view_of_head(case_id: str, doc: Document) -> CaseView:
    """A head's stored view as the view commands decide on (for a read of the heads)."""
    return _view(case_id, doc)
