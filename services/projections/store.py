"""The `cases` collection: idempotent writes of events, reads for APIs and commands."""

from __future__ import annotations

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import CaseEvent, DepartmentRequest, SlaEvent
from services.projections.core import (
    facts,
    request_change,
    sla_change,
    state_change,
    timeline_entry,
)


class CaseStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.cases = db["cases"]

    async def create_indexes(self) -> None:
        await self.cases.create_index([("state", ASCENDING), ("department", ASCENDING)])

    async def apply(self, env: Envelope) -> bool:
        """Record `env` on its case; False if it was already there (a duplicate).

        Every step is idempotent and all run even for a duplicate: a crash between two of
        them is mended when the event is delivered again.
        """
        added = await self._add_to_timeline(env)
        case_id = env.data.case_id
        if fixed := facts(env):
            await self.cases.update_one({"_id": case_id}, {"$set": fixed})
        if isinstance(env.data, CaseEvent):
            # Only a newer version moves the state: late arrivals from other topics don't.
            await self.cases.update_one(
                {"_id": case_id, "version": {"$not": {"$gte": env.data.version}}},
                {"$set": state_change(env)},
            )
        elif isinstance(env.data, SlaEvent):
            await self.cases.update_one({"_id": case_id}, {"$set": sla_change(env.data)})
        elif isinstance(env.data, DepartmentRequest) and (change := request_change(env.data)):
            await self.cases.update_one({"_id": case_id, **change[0]}, {"$set": change[1]})
        return added

    async def _add_to_timeline(self, env: Envelope) -> bool:
        entry = timeline_entry(env)
        try:
            result = await self.cases.update_one(
                {"_id": env.data.case_id, "timeline.event_id": {"$ne": env.id}},
                {"$push": {"timeline": {"$each": [entry], "$sort": {"version": 1, "at": 1}}}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # the case exists and already holds this event
        return result.modified_count == 1 or result.upserted_id is not None

    async def get(self, case_id: str) -> Document | None:
        # A document whose first event is still being written has no state yet: not a case.
        return await self.cases.find_one({"_id": case_id, "state": {"$exists": True}})
