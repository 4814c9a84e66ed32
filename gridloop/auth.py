"""Credentials: who may call which endpoint (the roles are `gridloop.access`'s).

A credential is a bearer token (`glk_…`) issued once to one holder with one role; only its
SHA-256 is stored (MongoDB `credentials`). Endpoints name the roles they allow:

    @router.post("/x")
    async def x(who: Annotated[Principal, Depends(require(Role.supervisor))]) -> ...

A department's credential names its department (`subject`), so it reaches only its cases.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime

from fastapi import Request
from fastapi.security import HTTPBearer
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.access import PUBLIC, Principal, Role
from gridloop.mongo import Document
from gridloop.people import SESSION_PREFIX, People
from gridloop.refusal import Refused, Why

TOKEN_PREFIX = "glk_"
CACHE_SECONDS = 30.0  # a revoked credential stops working within this time
__all__ = ["PUBLIC", "CredentialStore", "Principal", "Require", "Role", "require"]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class CredentialStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.credentials = db["credentials"]
        self.people = People(db)  # a person's session token works as a credential
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def issue(self, role: Role, subject: str, note: str = "") -> str:
        """A new token for `subject` in `role`; it is shown once and never stored."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await self.credentials.insert_one(
            {
                "_id": _digest(token),
                "role": role.value,
                "subject": subject,
                "note": note,
                "created_at": datetime.now(UTC),
                "revoked": False,
            }
        )
        return token

    async def revoke(self, subject: str) -> int:
        result = await self.credentials.update_many(
            {"subject": subject}, {"$set": {"revoked": True}}
        )
        self._cache.clear()
        return result.modified_count

    async def principal(self, token: str) -> Principal | None:
        if token.startswith(SESSION_PREFIX):  # not cached: signing out ends it at once
            return await self.people.principal(token)
        digest = _digest(token)
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        doc = await self.credentials.find_one({"_id": digest, "revoked": False})
        found = Principal(Role(doc["role"]), doc["subject"]) if doc else None
        self._cache[digest] = (time.monotonic() + CACHE_SECONDS, found)
        return found


class Require(HTTPBearer):
    """The bearer credential of a request, admitted only in `roles` (Role.public admits
    callers without a token). A security scheme itself, so OpenAPI names the credential,
    and one dependency where a scheme and a check on it would be two: FastAPI's solving of
    each nested dependency costs a request ≈ 15 µs (docs/benchmarks.md, "Intake")."""

    def __init__(self, *roles: Role) -> None:
        super().__init__(auto_error=False, scheme_name="HTTPBearer")
        self.roles = roles

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        bearer = await super().__call__(request)
        if bearer is None:
            if Role.public in self.roles:
                return PUBLIC
            raise Refused(
                Why.unauthenticated, ("header", "Authorization"), "a bearer token is required"
            )
        store: CredentialStore = request.app.state.credentials
        who = await store.principal(bearer.credentials)
        if who is None:
            raise Refused(
                Why.unauthenticated, ("header", "Authorization"), "unknown or revoked token"
            )
        if who.role not in self.roles and Role.public not in self.roles:
            allowed = ", ".join(r.value for r in self.roles)
            raise Refused(
                Why.forbidden,
                ("header", "Authorization"),
                f"role {who.role.value} may not do this; allowed: {allowed}",
            )
        return who


def require(*roles: Role) -> Require:
    """A dependency admitting only `roles` (Role.public admits callers without a token)."""
    return Require(*roles)
