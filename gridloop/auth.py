"""Credentials and roles: who may call which endpoint.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from fastapi import Request
from fastapi.security import HTTPBearer
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.errors import Rejected
from gridloop.mongo import Document

TOKEN_PREFIX = "glk_"
CACHE_SECONDS = 30.0  # a revoked credential stops working within this time


class Role(StrEnum):
    public = "public"
    hotline = "hotline"  # hotline operator (热线)
    supervisor = "supervisor"  # grid supervisor (监督员)
    supervision_centre = "supervision_centre"  # 监督中心
    command_centre = "command_centre"  # 指挥中心
    department = "department"
    admin = "admin"


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str  # who: a supervisor id, a department code, an operator name

    @property
    def department(self) -> str | None:
        return self.subject if self.role is Role.department else None


PUBLIC = Principal(Role.public, "anonymous")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class CredentialStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.credentials = db["credentials"]
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
            raise Rejected(
                401,
                ("header", "Authorization"),
                "a bearer token is required",
                "unauthenticated",
                {"WWW-Authenticate": "Bearer"},
            )
        store: CredentialStore = request.app.state.credentials
        who = await store.principal(bearer.credentials)
        if who is None:
            raise Rejected(
                401,
                ("header", "Authorization"),
                "unknown or revoked token",
                "unauthenticated",
                {"WWW-Authenticate": "Bearer"},
            )
        if who.role not in self.roles and Role.public not in self.roles:
            allowed = ", ".join(r.value for r in self.roles)
            raise Rejected(
                403,
                ("header", "Authorization"),
                f"role {who.role.value} may not do this; allowed: {allowed}",
                "forbidden",
            )
        return who


def require(*roles: Role) -> Require:
    """A dependency admitting only `roles` (Role.public admits callers without a token)."""
    return Require(*roles)
