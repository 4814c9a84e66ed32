"""The key of signed media links (`gridloop.medialinks`): configured, else the database's."""

from __future__ import annotations

import secrets

from pymongo.asynchronous.database import AsyncDatabase

from gridloop.mongo import Document


async def link_key(db: AsyncDatabase[Document], configured: str) -> bytes:
    """The configured key, else the database's own (made once, kept in `media_keys`)."""
    if configured:
        return configured.encode()
    keys = db["media_keys"]
    await keys.update_one(
        {"_id": "links"}, {"$setOnInsert": {"key": secrets.token_hex(32)}}, upsert=True
    )
    doc = await keys.find_one({"_id": "links"})
    assert doc is not None
    return bytes.fromhex(doc["key"])
