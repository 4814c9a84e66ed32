"""A reporter's follow token (跟踪凭证): what lets them follow and rate their case without an
account. Derived from the case id under a key made once per database, so a retried report
gets the same token, and notify can put the link in the reporter's messages."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from pymongo.asynchronous.database import AsyncDatabase

from gridloop.mongo import Document

FOLLOW_PREFIX = "glf_"


def follow_token(key: bytes, case_id: str) -> str:
    """The reporter's token to follow a case: derived, so a retried report gets the same."""
    digest = hmac.new(key, case_id.encode(), hashlib.sha256).hexdigest()
    return FOLLOW_PREFIX + digest[:32]


async def follow_key(db: AsyncDatabase[Document]) -> bytes:
    """The key of reporters' follow tokens: made once per database, kept there."""
    keys = db["intake_keys"]
    await keys.update_one(
        {"_id": "follow"}, {"$setOnInsert": {"key": secrets.token_hex(32)}}, upsert=True
    )
    doc = await keys.find_one({"_id": "follow"})
    assert doc is not None
    return bytes.fromhex(doc["key"])
