"""Heads in MongoDB (`case_heads`, one document per case): the claim is a conditional update
on the revision, or the insert of a new case's head (`_id` unique).

    {_id, rev, view: {...}, outbox: [{value, headers}], outbox_at, answers: {key: {...}},
     last: {...}}

The outbox holds the claimed events as Kafka records (bytes as published), so whoever
publishes them later sends exactly what the claim decided.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from datetime import datetime

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from gridloop.cases.view import CaseView, PendingRequest
from gridloop.commands.head import Answer, Claim, Head, Remembered
from gridloop.lifecycle import State
from gridloop.mongo import Document
from gridloop.together import Together
from schemas.envelope import Envelope, decode, encode
from schemas.events import Channel, Point

DUPLICATE_KEY = 11000
RECENT = 8  # claims a head remembers by revision and request (a bulk write's outcome)


class MongoHeads:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.heads = db["case_heads"]
        # Concurrent commands share round trips: their heads are read in one query, their
        # claims written in one bulk write (new cases' in one insert), settled in one write.
        self._loading: Together[str, Head | None] = Together(self._load_group)
        self._claiming: Together[Claim, bool] = Together(self.claim_many)
        self._settling: Together[tuple[str, int], None] = Together(self._settle_many)

    async def create_indexes(self) -> None:
        # The relay's search for outboxes nobody settled: few documents hold one.
        await self.heads.create_index([("outbox_at", ASCENDING)], sparse=True)

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

    async def claim(self, claim: Claim) -> bool:
        return await self._claiming(claim)

    async def claim_many(self, claims: Sequence[Claim]) -> list[bool]:
        """Claims in one write (two of one case among them: one stands). When some fail,
        their heads are read again: a claim stood if the head's recent claims hold its
        revision with its request's fingerprint."""
        opening = [c for c in claims if c.rev == 1]
        claiming = [c for c in claims if c.rev > 1]
        stood = dict(zip(map(id, opening), await self._insert_many(opening), strict=True))
        if claiming:
            writes = [UpdateOne(_at(c), _claimed(c)) for c in claiming]
            done = await self.heads.bulk_write(writes, ordered=False)
            if done.modified_count == len(claiming):
                stood |= {id(c): True for c in claiming}
            else:
                heads = await self.load_many(c.case_id for c in claiming)
                stood |= {id(c): _stands(c, heads.get(c.case_id)) for c in claiming}
        return [stood[id(c)] for c in claims]

    async def settle(self, claims: Sequence[tuple[str, int]]) -> None:
        if len(claims) == 1:
            await self._settling(claims[0])
        elif claims:
            await self._settle_many(list(claims))

    async def stranded(self, before: datetime, limit: int) -> list[Head]:
        found = self.heads.find({"outbox_at": {"$lt": before}}).limit(limit)
        return [_head(doc) async for doc in found]

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

    async def _settle_many(self, claims: list[tuple[str, int]]) -> list[None]:
        unset = {"$unset": {"outbox": "", "outbox_at": ""}}
        writes = [UpdateOne({"_id": case_id, "rev": rev}, unset) for case_id, rev in claims]
        await self.heads.bulk_write(writes, ordered=False)
        return [None] * len(claims)


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
    return Head(view, doc["rev"], outbox, answers, _remembered(last) if last else None, recent)


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
        }
    )
