"""The contact store (MongoDB): `contacts` holds each contact sealed under its data key,
`contact_keys` the data keys wrapped by the master key. Neither holds a plaintext contact
or a master key, so the database's files, journal and operation log never do either.

Erasing a contact deletes its wrapped data key first (crypto-shredding: what the journal
still holds of the sealed contact no longer opens, once the master keys that wrapped the
deleted key are retired too — docs/personal-data.md), then the sealed contact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from bson import Binary
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.contacts.keys import ContactKeyError, MasterKeys, new_data_key, open_sealed, seal
from gridloop.contacts.model import Contact
from gridloop.mongo import Document

CONTACTS, KEYS = "contacts", "contact_keys"


class ContactStore:
    def __init__(self, db: AsyncDatabase[Document], keys: MasterKeys) -> None:
        self.contacts, self.data_keys, self.keys = db[CONTACTS], db[KEYS], keys

    async def create_indexes(self) -> None:
        await self.contacts.create_index([("case_id", ASCENDING)])
        await self.contacts.create_index([("at", ASCENDING)])

    async def put(self, ref: str, case_id: str, contact: Contact) -> None:
        """Keep `contact` as `ref`, once: a retried report finds it kept and changes nothing.
        The first writer's data key stands, and the contact is sealed under it: two round
        trips for a new contact, three for a retry."""
        data_key = new_data_key()
        master, wrapped = self.keys.wrap(data_key, ref)
        mine = await self.data_keys.update_one(
            {"_id": ref},
            {"$setOnInsert": {"master": master, "wrapped": Binary(wrapped), "at": _now()}},
            upsert=True,
        )
        if mine.upserted_id is None:  # kept before (a retry, or a concurrent one)
            kept = await self.data_keys.find_one({"_id": ref})
            assert kept is not None
            data_key = self.keys.unwrap(kept["master"], bytes(kept["wrapped"]), ref)
        sealed = seal(data_key, contact.model_dump_json(exclude_none=True).encode(), ref)
        await self.contacts.update_one(
            {"_id": ref},
            {"$setOnInsert": {"case_id": case_id, "sealed": Binary(sealed), "at": _now()}},
            upsert=True,
        )

    async def get_many(self, refs: Sequence[str]) -> dict[str, Contact]:
        """The contacts of `refs` that are kept (an erased one is absent)."""
        keys = {d["_id"]: d async for d in self.data_keys.find({"_id": {"$in": list(refs)}})}
        found: dict[str, Contact] = {}
        async for doc in self.contacts.find({"_id": {"$in": list(keys)}}):
            ref, key = doc["_id"], keys[doc["_id"]]
            data_key = self.keys.unwrap(key["master"], bytes(key["wrapped"]), ref)
            plain = open_sealed(data_key, bytes(doc["sealed"]), ref)
            found[ref] = Contact.model_validate_json(plain)
        return found

    async def get(self, ref: str) -> Contact | None:
        return (await self.get_many([ref])).get(ref)

    async def opt_out(self, ref: str) -> bool:
        """The reporter of `ref` asks to be told nothing more: their contact sealed again
        (under its own data key) with `opted_out`. False when nothing is kept (erased, or
        never given): then nobody is told anyway."""
        key = await self.data_keys.find_one({"_id": ref})
        doc = await self.contacts.find_one({"_id": ref})
        if key is None or doc is None:
            return False
        data_key = self.keys.unwrap(key["master"], bytes(key["wrapped"]), ref)
        contact = Contact.model_validate_json(open_sealed(data_key, bytes(doc["sealed"]), ref))
        if not contact.opted_out:
            quiet = contact.model_copy(update={"opted_out": True})
            sealed = seal(data_key, quiet.model_dump_json(exclude_none=True).encode(), ref)
            await self.contacts.update_one({"_id": ref}, {"$set": {"sealed": Binary(sealed)}})
        return True

    async def erase(self, refs: Iterable[str]) -> int:
        """Shred the contacts `refs`: their data keys, then the sealed contacts. How many were
        kept (0: already erased, or never given)."""
        wanted = {"_id": {"$in": list(refs)}}
        shredded = (await self.data_keys.delete_many(wanted)).deleted_count
        removed = (await self.contacts.delete_many(wanted)).deleted_count
        return max(shredded, removed)

    async def kept_before(self, cutoff: datetime, after: str, limit: int) -> list[Document]:
        """Contacts kept since before `cutoff` (`_id`, `case_id`), by reference after `after`:
        the only ones whose case can have ended before it."""
        query = {"at": {"$lt": cutoff}, "_id": {"$gt": after}}
        found = self.contacts.find(query, {"case_id": 1}).sort("_id", 1).limit(limit)
        return [d async for d in found]

    async def refs_of_cases(self, case_ids: Sequence[str]) -> list[str]:
        found = self.contacts.find({"case_id": {"$in": list(case_ids)}}, {"_id": 1})
        return [d["_id"] async for d in found]

    async def rotate(self) -> int:
        """Re-wrap every data key not wrapped by the current master key under it; how many.
        A key whose master key is not configured stops the rotation (ContactKeyError)."""
        current, moved = self.keys.current_id, 0
        async for doc in self.data_keys.find({"master": {"$ne": current}}):
            ref = doc["_id"]
            data_key = self.keys.unwrap(doc["master"], bytes(doc["wrapped"]), ref)
            master, wrapped = self.keys.wrap(data_key, ref)
            done = await self.data_keys.update_one(
                {"_id": ref, "master": doc["master"]},
                {"$set": {"master": master, "wrapped": Binary(wrapped)}},
            )
            moved += done.modified_count
        return moved

    async def masters(self) -> dict[str, int]:
        """How many data keys each master key (by fingerprint) wraps."""
        pipeline: list[Document] = [{"$group": {"_id": "$master", "n": {"$sum": 1}}}]
        return {d["_id"]: d["n"] async for d in await self.data_keys.aggregate(pipeline)}


def _now() -> datetime:
    return datetime.now(UTC)


__all__ = ["ContactKeyError", "ContactStore"]
