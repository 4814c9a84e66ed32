"""A case's head: its latest committed view, the claims made on it, and what a claim owes.

Every command on a case is decided against its head and claims the next revision of it
atomically (`Heads.claim`, a compare-and-set on `rev`): of two commands decided on one
revision, one claims it and the other decides again on the new head, where it is usually
refused. The claim carries the events it decided (`outbox`) and the answer to remember;
publishing them follows, and `settle` clears the outbox once Kafka acknowledged them. A
claim whose outbox is never settled (a crash after the claim) is published by whoever
loads the head next (before deciding: a claim replaces the outbox it was decided on), or
by the relay (`gridloop.commands.relay`).

Pure types and the store's interface; `gridloop.commands.mongo` keeps heads in MongoDB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gridloop.cases.view import CaseView
from schemas.envelope import Envelope

Body = dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """What a command answers: a status and a JSON body."""

    status: int
    body: Body


@dataclass(frozen=True)
class Remembered:
    """A claimed command's answer, and the fingerprint of the request that made it."""

    fingerprint: str
    answer: Answer
    at: datetime | None = None


@dataclass(frozen=True)
class Asked:
    """How a request is known again: `scope` (the command and its caller), the caller's
    `Idempotency-Key` if any, and the request's content."""

    scope: str
    key: str | None
    content: str

    @property
    def fingerprint(self) -> str:
        return _digest(f"{self.scope}\n{self.content}")

    @property
    def key_id(self) -> str | None:
        """The key as the head stores it: hashed (a key may hold any character)."""
        return None if self.key is None else _digest(f"{self.scope}\n{self.key}")[:32]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Head:
    """A case's head at revision `rev` (0: adopted from the projection, no claim yet)."""

    view: CaseView
    rev: int
    outbox: tuple[Envelope, ...] = ()
    answers: Mapping[str, Remembered] = field(default_factory=dict)
    last: Remembered | None = None  # the latest claim's: an identical request gets it again
    recent: tuple[tuple[int, str], ...] = ()  # the latest claims: (revision, fingerprint)

    @property
    def case_id(self) -> str:
        return self.view.case_id


@dataclass(frozen=True)
class Claim:
    """Revision `rev` of a case's head: the view after `outbox`, and the answer owed."""

    view: CaseView
    rev: int
    outbox: Sequence[Envelope]
    remembered: Remembered
    key_id: str | None = None
    forget: tuple[str, ...] = ()  # keys whose answers are past keeping

    @property
    def case_id(self) -> str:
        return self.view.case_id


class Heads(Protocol):
    """Where heads are kept. `claim` is atomic: it succeeds only if the head is still at
    `rev - 1` (a new head: only if there is none), and replaces its outbox, which the
    claimer published when it loaded the head."""

    async def load(self, case_id: str) -> Head | None: ...

    async def load_many(self, case_ids: Iterable[str]) -> dict[str, Head]: ...

    async def adopt(self, view: CaseView) -> Head:
        """A head at revision 0 for a case that has none (cases from before heads); the
        existing one if another process adopted it first."""
        ...

    async def claim(self, claim: Claim) -> bool: ...

    async def claim_many(self, claims: Sequence[Claim]) -> list[bool]: ...

    async def settle(self, claims: Sequence[tuple[str, int]]) -> None:
        """The outboxes of these (case, rev) claims were published: clear them."""
        ...

    async def stranded(self, before: datetime, limit: int) -> list[Head]:
        """Heads whose outbox was claimed before `before` and is not settled."""
        ...


class Publisher(Protocol):
    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Publish; return once Kafka acknowledged all, or raise `Refused(unavailable)`."""
        ...
