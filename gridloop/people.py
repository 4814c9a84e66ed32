"""People who sign in to the workbench (工作台): a username, a password, a role.

Machine tokens (`gridloop.auth`, `glk_…`) stay for integrations; a person signs in with a
password and gets a *session* (`gls_…`): a random token whose SHA-256 is kept in
`sessions` with the person's role and subject, a CSRF token, and an expiry (a shift,
`SESSION_HOURS`). The console keeps the token in an HttpOnly cookie and calls the services
with it as a bearer token, so every service authorises a person exactly as it does a
machine credential, and refuses what the API refuses.

Passwords are hashed with Argon2id (argon2-cffi's defaults, re-hashed on sign-in when the
defaults move on); a password is never logged, stored or compared in the clear.

    people = People(db)
    await people.add("wang.li", "a long passphrase", Role.department, "WATER", "王力")
    session = await people.sign_in("wang.li", "a long passphrase")   # None: refused
    who = await people.principal(session.token)
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from gridloop.access import Principal, Role
from gridloop.mongo import Document
from gridloop.refusal import conflict, invalid

SESSION_PREFIX = "gls_"
SESSION_HOURS = 12  # a shift: a person signs in again the next day
MIN_PASSWORD = 10
_HASHER = PasswordHasher()
# Verified when a username is unknown, so a refusal takes as long either way (no username
# can be found out by timing the sign-in).
_NOBODY = _HASHER.hash(secrets.token_urlsafe(16))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    token: str  # shown once, to the person's browser
    csrf: str  # echoed by every form the console serves (CSRF)
    principal: Principal
    name: str
    expires: datetime


class People:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.people = db["people"]
        self.sessions = db["sessions"]

    async def create_indexes(self) -> None:
        await self.sessions.create_index([("expires", ASCENDING)])

    async def add(
        self, username: str, password: str, role: Role, subject: str, name: str = ""
    ) -> None:
        """A new person; refused if the username is taken or the password is too short."""
        _check_password(password)
        # A username is the handler id of a department's actions: at most 32, no "/".
        if not username.isprintable() or not 0 < len(username) <= 32 or "/" in username:
            raise invalid(("body", "username"), "1–32 printable characters, no '/'", "bad_username")
        try:
            await self.people.insert_one(
                {
                    "_id": username,
                    "hash": _HASHER.hash(password),
                    "role": role.value,
                    "subject": subject,
                    "name": name or username,
                    "disabled": False,
                    "created_at": datetime.now(UTC),
                }
            )
        except DuplicateKeyError:
            raise conflict(("body", "username"), f"{username} exists already", "exists") from None

    async def set_password(self, username: str, password: str) -> bool:
        _check_password(password)
        done = await self.people.update_one(
            {"_id": username}, {"$set": {"hash": _HASHER.hash(password)}}
        )
        await self.sessions.delete_many({"username": username})  # signed out everywhere
        return done.matched_count == 1

    async def disable(self, username: str) -> bool:
        done = await self.people.update_one({"_id": username}, {"$set": {"disabled": True}})
        await self.sessions.delete_many({"username": username})
        return done.matched_count == 1

    async def sign_in(self, username: str, password: str) -> Session | None:
        """A new session, or None (unknown person, wrong password, disabled: one answer)."""
        doc = await self.people.find_one({"_id": username})
        if not _verified(doc["hash"] if doc else _NOBODY, password) or doc is None:
            return None
        if doc.get("disabled"):
            return None
        if _HASHER.check_needs_rehash(doc["hash"]):
            await self.people.update_one(
                {"_id": username}, {"$set": {"hash": _HASHER.hash(password)}}
            )
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        who = Principal(Role(doc["role"]), doc["subject"], username)
        session = Session(
            token,
            secrets.token_urlsafe(24),
            who,
            doc["name"],
            datetime.now(UTC) + timedelta(hours=SESSION_HOURS),
        )
        await self.sessions.insert_one(
            {
                "_id": _digest(token),
                "username": username,
                "role": who.role.value,
                "subject": who.subject,
                "name": session.name,
                "csrf": session.csrf,
                "expires": session.expires,
            }
        )
        return session

    async def session(self, token: str) -> Session | None:
        """The live session of `token` (None: unknown, signed out or expired)."""
        if not token.startswith(SESSION_PREFIX):
            return None
        doc = await self.sessions.find_one({"_id": _digest(token)})
        if doc is None or doc["expires"] <= datetime.now(UTC):
            return None
        who = Principal(Role(doc["role"]), doc["subject"], doc["username"])
        return Session(token, doc["csrf"], who, doc["name"], doc["expires"])

    async def principal(self, token: str) -> Principal | None:
        found = await self.session(token)
        return found.principal if found else None

    async def sign_out(self, token: str) -> None:
        await self.sessions.delete_one({"_id": _digest(token)})


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise invalid(
            ("body", "password"), f"at least {MIN_PASSWORD} characters", "password_too_short"
        )


def _verified(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False
