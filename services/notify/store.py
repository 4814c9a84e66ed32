"""Notify's MongoDB collections.

- `deliveries`: one document per message and department (`_id` = webhook id), the outbox the
  delivery workers drain: `status` pending → delivered, or dead (exhausted, gone, refused).
- `delivery_attempts`: every attempt, with its outcome, status code, error and duration.
- `webhook_endpoints`: a department's URL and secrets as set by the admin API or CLI, and
  whether it is disabled (410 Gone); without one, the city pack's webhook applies.
"""

from __future__ import annotations

import secrets as random_secrets
from base64 import b64encode
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.citypack import CityPack
from gridloop.mongo import Document

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


def new_secret() -> str:
    """A `whsec_` secret: 32 random bytes, base64."""
    return "whsec_" + b64encode(random_secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Endpoint:
    department: str
    url: str
    secrets: list[str] = field(default_factory=list)  # newest first; all sign during rotation
    disabled: str | None = None  # why, when disabled


class DeliveryStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.deliveries = db["deliveries"]
        self.attempts = db["delivery_attempts"]
        self.endpoints = db["webhook_endpoints"]

    async def create_indexes(self) -> None:
        await self.deliveries.create_index([("status", ASCENDING), ("seq", ASCENDING)])
        await self.deliveries.create_index([("department", ASCENDING), ("status", ASCENDING)])
        await self.attempts.create_index([("delivery_id", ASCENDING), ("attempt", ASCENDING)])

    # --- deliveries ---------------------------------------------------------------------

    async def enqueue(self, delivery: Document) -> bool:
        """Add a delivery unless it is there already (a redelivered event): True if new."""
        result = await self.deliveries.update_one(
            {"_id": delivery["_id"]}, {"$setOnInsert": delivery}, upsert=True
        )
        return result.upserted_id is not None

    async def pending(self, limit: int = 5000) -> list[Document]:
        cursor = self.deliveries.find({"status": PENDING}).sort("seq", ASCENDING).limit(limit)
        return [d async for d in cursor]

    async def claim(self, doc: Document, owner: str, lease: timedelta) -> bool:
        """Take a pending delivery for one attempt, unless another worker holds it or it
        changed since `doc` was read (attempts made, or its next attempt is not due yet)."""
        now = datetime.now(UTC)
        result = await self.deliveries.update_one(
            {
                "_id": doc["_id"],
                "status": PENDING,
                "attempts": doc["attempts"],
                "next_at": {"$lte": now},
                "$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}],
            },
            {"$set": {"lease_until": now + lease, "lease_owner": owner}},
        )
        return result.modified_count == 1

    async def record_attempt(self, attempt: Document, change: Document) -> None:
        """Log the attempt, then move the delivery on (next try, delivered or dead)."""
        await self.attempts.update_one(
            {"_id": f"{attempt['delivery_id']}/{attempt['replay']}/{attempt['attempt']}"},
            {"$set": attempt},
            upsert=True,
        )
        await self.deliveries.update_one(
            {"_id": attempt["delivery_id"]},
            {"$set": change | {"lease_until": None, "lease_owner": None}},
        )

    async def get(self, delivery_id: str) -> Document | None:
        doc = await self.deliveries.find_one({"_id": delivery_id})
        if doc is not None:
            cursor = self.attempts.find({"delivery_id": delivery_id}).sort(
                [("replay", ASCENDING), ("attempt", ASCENDING)]
            )
            doc["attempt_log"] = [{k: v for k, v in a.items() if k != "_id"} async for a in cursor]
        return doc

    async def find(self, query: Document, limit: int = 100) -> list[Document]:
        cursor = self.deliveries.find(query, {"body": 0}).sort("seq", ASCENDING).limit(limit)
        return [d async for d in cursor]

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
        """Every department's endpoint: the admin's setting, else the city pack's webhook."""
        now = datetime.now(UTC)
        found: dict[str, Endpoint] = {}
        for code, dept in pack.departments.items():
            if dept.webhook is not None:
                found[code] = Endpoint(code, str(dept.webhook.url), [dept.webhook.secret])
        async for doc in self.endpoints.find({}):
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
        return secret

    async def disable(self, department: str, reason: str) -> None:
        await self.endpoints.update_one(
            {"_id": department},
            {"$set": {"disabled": reason, "updated_at": datetime.now(UTC)}},
            upsert=True,
        )

    async def enable(self, department: str) -> bool:
        result = await self.endpoints.update_one(
            {"_id": department}, {"$set": {"disabled": None, "updated_at": datetime.now(UTC)}}
        )
        return result.matched_count == 1

    async def endpoint_info(self, department: str) -> Document | None:
        return await self.endpoints.find_one({"_id": department})
