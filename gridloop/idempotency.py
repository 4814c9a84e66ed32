"""`Idempotency-Key` for POSTs: a retried request gets the first answer, creates nothing.

The answer is stored only after the work (Kafka acknowledged) is done. A crash in between
is safe too: callers derive their ids from the key, so the repeated work yields the same
events, which consumers drop as duplicates.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import JSONResponse
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from gridloop.errors import Rejected
from gridloop.mongo import Document

Answer = tuple[int, dict[str, Any]]
RETENTION_SECONDS = 24 * 3600


class IdempotencyStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.answers = db["idempotency"]

    async def create_indexes(self) -> None:
        await self.answers.create_index("created_at", expireAfterSeconds=RETENTION_SECONDS)

    async def once(
        self, scope: str, key: str | None, request: bytes, work: Callable[[], Awaitable[Answer]]
    ) -> JSONResponse:
        if key is None:
            status, body = await work()
            return JSONResponse(body, status_code=status)
        doc_id = f"{scope}:{key}"
        fingerprint = hashlib.sha256(request).hexdigest()
        stored = await self.answers.find_one({"_id": doc_id})
        if stored is not None:
            if stored["fingerprint"] != fingerprint:
                raise Rejected(
                    422,
                    ("header", "Idempotency-Key"),
                    "this key was used for a different request",
                    "idempotency_key_reused",
                )
            return JSONResponse(stored["body"], status_code=stored["status"])
        status, body = await work()
        # A concurrent retry may have stored the same answer first: either is the answer.
        with contextlib.suppress(DuplicateKeyError):
            await self.answers.insert_one(
                {
                    "_id": doc_id,
                    "fingerprint": fingerprint,
                    "status": status,
                    "body": body,
                    "created_at": datetime.now(UTC),
                }
            )
        return JSONResponse(body, status_code=status)
