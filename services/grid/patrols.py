"""Patrols (巡查) in MongoDB: `patrols` (one document a patrol: who, which grid, when, its
last point and counts, an outbox of claimed events), `patrol_pieces` (the track, one
document a piece under `<patrol>/<seq>`: a piece sent twice is stored once) and
`patrollers` (each person's open patrol: one at a time)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from gridloop.mongo import Document


class PatrolStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.patrols = db["patrols"]
        self.pieces = db["patrol_pieces"]
        self.patrollers = db["patrollers"]

    async def create_indexes(self) -> None:
        await self.patrols.create_index([("open", ASCENDING), ("grid", ASCENDING)])
        await self.patrols.create_index([("open", ASCENDING), ("ended_at", ASCENDING)])
        await self.pieces.create_index([("patrol", ASCENDING), ("seq", ASCENDING)])

    async def get(self, patrol: str) -> Document | None:
        return await self.patrols.find_one({"_id": patrol})

    async def open_patrol(self, doc: Document) -> str | None:
        """Store a new open patrol and make it its person's one; the id of the patrol
        they already have open (nothing stored) when there is one."""
        staff, patrol = doc["staff"], doc["_id"]
        try:
            await self.patrollers.update_one(
                {"_id": staff, "patrol": None}, {"$set": {"patrol": patrol}}, upsert=True
            )
        except DuplicateKeyError:  # the person's document exists with an open patrol
            held = await self.patrollers.find_one({"_id": staff})
            other = str(held["patrol"]) if held and held.get("patrol") else None
            if other is not None and not await self._stale(other):
                return other
            # A slot left by a crash before its patrol was stored, or by one ended since.
            taken = await self.patrollers.update_one(
                {"_id": staff, "patrol": other}, {"$set": {"patrol": patrol}}
            )
            if taken.matched_count != 1:
                return other or "another"
        await self.patrols.insert_one(doc)
        return None

    async def _stale(self, patrol: str) -> bool:
        found = await self.patrols.find_one({"_id": patrol}, {"open": 1})
        return found is None or not found["open"]

    async def close(self, patrol: str, changes: Document) -> bool:
        """End an open patrol (once: False when it was ended already)."""
        done = await self.patrols.update_one(
            {"_id": patrol, "open": True}, {"$set": {**changes, "open": False}}
        )
        return done.modified_count == 1

    async def free(self, staff: str, patrol: str) -> None:
        await self.patrollers.update_one(
            {"_id": staff, "patrol": patrol}, {"$set": {"patrol": None}}
        )

    async def clear_outbox(self, patrol: str) -> None:
        await self.patrols.update_one({"_id": patrol}, {"$set": {"outbox": []}})

    async def piece(self, patrol: str, seq: int) -> Document | None:
        return await self.pieces.find_one({"_id": f"{patrol}/{seq}"})

    async def add_piece(self, piece: Document) -> Document | None:
        """Store a track piece; the piece stored before under its id (nothing stored) when
        it was sent before."""
        try:
            await self.pieces.insert_one(piece)
        except DuplicateKeyError:
            return await self.pieces.find_one({"_id": piece["_id"]})
        return None

    async def advance(self, patrol: str, seq: int, last: Document, points: int, out: int) -> None:
        """Count a stored piece, and move the patrol's last point if it is the latest."""
        await self.patrols.update_one({"_id": patrol}, {"$inc": {"points": points, "outside": out}})
        await self.patrols.update_one(
            {"_id": patrol, "last_seq": {"$lt": seq}}, {"$set": {"last": last, "last_seq": seq}}
        )

    async def track(self, patrol: str) -> list[Document]:
        """The patrol's points in order (by piece, then within it)."""
        cursor = self.pieces.find({"patrol": patrol}).sort("seq", ASCENDING)
        return [p async for piece in cursor for p in piece["points"]]

    async def counts(self, patrol: str) -> tuple[int, int]:
        """Points and points outside over every stored piece (the track's own count)."""
        points = outside = 0
        async for piece in self.pieces.find({"patrol": patrol}, {"points": 1}):
            points += len(piece["points"])
            outside += sum(1 for p in piece["points"] if p.get("outside"))
        return points, outside

    async def open_in(self, grids: list[str] | None) -> list[Document]:
        """The open patrols (in `grids`, when given), the oldest first."""
        query: dict[str, Any] = {"open": True}
        if grids is not None:
            query["grid"] = {"$in": grids}
        cursor = self.patrols.find(query, {"outbox": 0}).sort("started_at", ASCENDING)
        return [d async for d in cursor]

    async def ended_in(
        self, grids: list[str] | None, since: datetime, limit: int
    ) -> list[Document]:
        """The patrols ended at or after `since` (in `grids`, when given), the latest
        ended first, `limit` at most."""
        query: dict[str, Any] = {"open": False, "ended_at": {"$gte": since}}
        found = self.patrols.find(query, {"outbox": 0}).sort("ended_at", DESCENDING)
        # The grids are kept here: `$in` beside the range makes SecantusDB read every patrol.
        ended = [d async for d in found if grids is None or d["grid"] in grids]
        return ended[:limit]
