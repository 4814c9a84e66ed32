"""Notify's MongoDB collections.

- `deliveries`: one document per message and department (`_id` = webhook id), the outbox the
  delivery workers drain: `status` pending → delivered, or dead (exhausted, gone, refused);
  while an attempt is made, `lease_owner` names the worker's round that claimed it (one
  update for the round) and `lease_until` when another worker may take it over.
  Every attempt, with its outcome, status code, error and duration, is in the delivery's
  `attempt_log`, written with the change it made (one write, not two).
- `delivery_attempts`: the attempts of deliveries recorded before `attempt_log`, read with
  them.
- `webhook_endpoints`: a department's URL and secrets as set by the admin API or CLI, and
  whether it is disabled (410 Gone); without one, the city pack's webhook applies.
"""

from __future__ import annotations

import secrets as random_secrets
import time
from base64 import b64encode
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from gridloop.citypack import CityPack
from gridloop.mongo import Document

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
DUPLICATE_KEY = 11000
# How long a worker goes on using the endpoints it read (the delivery workers look every
# round: a read a round cost 1.6 reads a case). A change through this store is seen at
# once; one made through another notify worker or the CLI, within this.
ENDPOINTS_FRESH_SECONDS = 5.0


def new_secret() -> str:
    """A `whsec_` secret: 32 random bytes, base64."""
    return "whsec_" + b64encode(random_secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Endpoint:
    department: str
    url: str
    secrets: list[str] = field(default_factory=list)  # newest first; all sign during rotation
    disabled: str | None = None  # why, when disabled


@dataclass(frozen=True)
class Outcome:
    """One attempt to record: its log entry, the change to its delivery, and the lease
    (`lease_owner`) it was made under."""

    attempt: Document
    change: Document
    claim: str


# What a list of deliveries leaves out: the message and the attempts (`get` has them).
_LISTED = {"body": 0, "attempt_log": 0}


def _attempt_id(attempt: Document) -> str:
    return f"{attempt['delivery_id']}/{attempt['replay']}/{attempt['attempt']}"


def _logged(attempt: Document) -> Document:
    """An attempt as its delivery's log keeps it: named, so that it is logged once."""
    return {"id": _attempt_id(attempt)} | attempt


class DeliveryStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.deliveries = db["deliveries"]
        self.attempts = db["delivery_attempts"]
        self.endpoints = db["webhook_endpoints"]
        # The endpoint settings last read, and when (monotonic): `all_endpoints`.
        self._endpoints_read: tuple[float, list[Document] | None] = (0.0, None)

    async def create_indexes(self) -> None:
        await self.deliveries.create_index([("status", ASCENDING), ("seq", ASCENDING)])
        await self.deliveries.create_index([("department", ASCENDING), ("status", ASCENDING)])
        # A department's own deliveries, newest first (`own.py`).
        await self.deliveries.create_index([("department", ASCENDING), ("seq", DESCENDING)])
        await self.attempts.create_index([("delivery_id", ASCENDING), ("attempt", ASCENDING)])

    # --- deliveries ---------------------------------------------------------------------

    async def enqueue(self, deliveries: Sequence[Document]) -> int:
        """Add a poll's deliveries in one write, except those there already (a redelivered
        event, a poll handled again): how many were new."""
        if not deliveries:
            return 0
        try:
            result = await self.deliveries.insert_many(deliveries, ordered=False)
        except BulkWriteError as exc:
            # Unordered: every delivery not there yet went in; only duplicates may fail.
            if any(e["code"] != DUPLICATE_KEY for e in exc.details["writeErrors"]):
                raise
            return int(exc.details["nInserted"])
        return len(result.inserted_ids)

    async def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of the deliveries `ids` are queued (whatever became of them)."""
        found = self.deliveries.find({"_id": {"$in": list(ids)}}, {"_id": 1})
        return {d["_id"] async for d in found}

    async def pending(self, limit: int = 5000) -> list[Document]:
        cursor = self.deliveries.find({"status": PENDING}).sort("seq", ASCENDING).limit(limit)
        # All in the first batch: no getMore round trip after the default 101.
        return [d async for d in cursor.batch_size(limit)]

    async def claim(self, docs: Sequence[Document], claim: str, lease: timedelta) -> set[str]:
        """Take pending deliveries for one attempt each under the lease `claim` (unique to
        one round of the caller): the ids taken. A delivery another worker holds, or that
        changed since it was read (attempts made, or its next attempt not due yet), is not.

        One `update_many` for the deliveries with the same number of attempts made (all of
        them, usually); only when some were not taken, one read of which were."""
        now = datetime.now(UTC)
        by_attempts: dict[int, list[str]] = {}
        for doc in docs:
            by_attempts.setdefault(doc["attempts"], []).append(doc["_id"])
        won: set[str] = set()
        for attempts, ids in by_attempts.items():
            result = await self.deliveries.update_many(
                {
                    "_id": {"$in": ids},
                    "status": PENDING,
                    "attempts": attempts,
                    "next_at": {"$lte": now},
                    # Free or expired. Not an `$or`: an operator at the top of the filter
                    # keeps SecantusDB off the `_id` index (a scan of the whole outbox).
                    "lease_until": {"$not": {"$gt": now}},
                },
                {"$set": {"lease_until": now + lease, "lease_owner": claim}},
            )
            if result.modified_count == len(ids):
                won.update(ids)
            elif result.modified_count:
                taken = self.deliveries.find(
                    {"_id": {"$in": ids}, "lease_owner": claim}, {"_id": 1}
                )
                won.update([d["_id"] async for d in taken.batch_size(len(ids) + 1)])
        return won

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        """Move the deliveries on (next try, delivered or dead), each with its attempt added
        to its log: one write for all of them. A delivery moves only if its lease is still
        the one the attempt was made under: one that ran out and was taken by another
        worker is that worker's to record, and only the attempt is logged (second write,
        rare: an entry already there is not added again)."""
        if not outcomes:
            return
        moved = await self.deliveries.bulk_write(
            [
                UpdateOne(
                    {"_id": o.attempt["delivery_id"], "lease_owner": o.claim},
                    {
                        "$set": o.change | {"lease_until": None, "lease_owner": None},
                        "$push": {"attempt_log": _logged(o.attempt)},
                    },
                )
                for o in outcomes
            ],
            ordered=False,
        )
        if moved.matched_count < len(outcomes):
            await self.deliveries.bulk_write(
                [
                    UpdateOne(
                        {
                            "_id": o.attempt["delivery_id"],
                            "attempt_log.id": {"$ne": _attempt_id(o.attempt)},
                        },
                        {"$push": {"attempt_log": _logged(o.attempt)}},
                    )
                    for o in outcomes
                ],
                ordered=False,
            )

    async def get(self, delivery_id: str) -> Document | None:
        """A delivery with every attempt made (`attempt_log`, in order)."""
        doc = await self.deliveries.find_one({"_id": delivery_id})
        if doc is not None:
            logged = {a["id"]: a for a in doc.get("attempt_log", [])}
            cursor = self.attempts.find({"delivery_id": delivery_id})  # before attempt_log
            older = {a["_id"]: a async for a in cursor if a["_id"] not in logged}
            made = sorted((older | logged).values(), key=lambda a: (a["replay"], a["attempt"]))
            doc["attempt_log"] = [
                {k: v for k, v in a.items() if k not in ("_id", "id")} for a in made
            ]
        return doc

    async def find(self, query: Document, limit: int = 100) -> list[Document]:
        cursor = self.deliveries.find(query, _LISTED).sort("seq", ASCENDING).limit(limit)
        return [d async for d in cursor]

    async def page(self, query: Document, offset: int, limit: int) -> list[Document]:
        """Deliveries matching `query`, newest first, without their bodies."""
        cursor = self.deliveries.find(query, _LISTED).sort("seq", DESCENDING)
        return [d async for d in cursor.skip(offset).limit(limit)]

    async def replay(self, query: Document) -> int:
        """Send dead deliveries again, with the same webhook id, from the schedule's start."""
        result = await self.deliveries.update_many(
            query | {"status": DEAD},
            {
                "$set": {
                    "status": PENDING,
                    "attempts": 0,
                    "next_at": datetime.now(UTC),
                    "lease_until": None,
                },
                "$inc": {"replays": 1},
            },
        )
        return result.modified_count

    # --- endpoints ----------------------------------------------------------------------

    async def endpoint(self, pack: CityPack, department: str) -> Endpoint | None:
        return (await self.all_endpoints(pack)).get(department)

    async def all_endpoints(self, pack: CityPack) -> dict[str, Endpoint]:
        """Every department's endpoint: the admin's setting, else the city pack's webhook
        (the settings as read within `ENDPOINTS_FRESH_SECONDS`; secrets expire exactly)."""
        now = datetime.now(UTC)
        found: dict[str, Endpoint] = {}
        for code, dept in pack.departments.items():
            if dept.webhook is not None:
                found[code] = Endpoint(code, str(dept.webhook.url), [dept.webhook.secret])
        for doc in await self._endpoint_docs():
            current = [
                s["secret"]
                for s in sorted(doc.get("secrets", []), key=lambda s: s["created_at"], reverse=True)
                if s.get("expires_at") is None or s["expires_at"] > now
            ]
            url = doc.get("url") or (found[doc["_id"]].url if doc["_id"] in found else None)
            if url is None:
                continue
            found[doc["_id"]] = Endpoint(
                doc["_id"],
                url,
                current or found.get(doc["_id"], Endpoint("", "")).secrets,
                doc.get("disabled"),
            )
        return found

    async def _endpoint_docs(self) -> list[Document]:
        read, docs = self._endpoints_read
        if docs is None or time.monotonic() - read > ENDPOINTS_FRESH_SECONDS:
            docs = await self.endpoints.find({}).to_list()
            self._endpoints_read = (time.monotonic(), docs)
        return docs

    def _endpoints_changed(self) -> None:
        self._endpoints_read = (0.0, None)

    async def set_webhook(
        self, pack: CityPack, department: str, url: str, overlap: timedelta
    ) -> str:
        """Point the department at `url` with a new secret (returned, shown once). Its
        previous secrets keep signing for `overlap`, so the receiver can switch keys."""
        now = datetime.now(UTC)
        doc = await self.endpoints.find_one({"_id": department})
        previous: list[dict[str, Any]] = list(doc.get("secrets", [])) if doc else []
        if doc is None:
            hook = pack.departments[department].webhook
            if hook is not None:
                previous = [{"secret": hook.secret, "created_at": now - timedelta(seconds=1)}]
        kept = []
        for s in previous:
            expires = s.get("expires_at")
            expires = now + overlap if expires is None else min(expires, now + overlap)
            if expires > now:
                kept.append(s | {"expires_at": expires})
        secret = new_secret()
        await self.endpoints.update_one(
            {"_id": department},
            {
                "$set": {
                    "url": url,
                    "secrets": [{"secret": secret, "created_at": now, "expires_at": None}, *kept],
                    "disabled": None,
                    "updated_at": now,
                }
            },
            upsert=True,
        )
        self._endpoints_changed()
        return secret

    async def disable(self, department: str, reason: str) -> None:
        await self.endpoints.update_one(
            {"_id": department},
            {"$set": {"disabled": reason, "updated_at": datetime.now(UTC)}},
            upsert=True,
        )
        self._endpoints_changed()

    async def enable(self, department: str) -> bool:
        result = await self.endpoints.update_one(
            {"_id": department}, {"$set": {"disabled": None, "updated_at": datetime.now(UTC)}}
        )
        self._endpoints_changed()
        return result.matched_count == 1

    async def endpoint_info(self, department: str) -> Document | None:
        return await self.endpoints.find_one({"_id": department})
