"""A case's head: its latest committed view, the claims made on it, and what a claim owes.

Every command on a case is decided against its head and claims the next revision of it
atomically (`Heads.claim`, a compare-and-set on `rev`): of two commands decided on one
revision, one claims it and the other decides again on the new head, where it is usually
refused. The claim carries the events it decided (`outbox`), the answer to remember and
its *writer* (the process that claimed it); publishing them follows.

Whether an outbox was published is known without writing it down case by case: each writer
keeps a *watermark* (`WriterMark.through`: every claim it made before it is published) and
says it every second. An outbox newer than its writer's watermark is published by whoever
loads the head next (before deciding: a claim replaces the outbox it was decided on); one
whose writer stopped saying it is alive is published by the relay
(`gridloop.commands.relay`).

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
    """A case's head at revision `rev` (1 when adopted from the projection, no claim yet)."""

    view: CaseView
    rev: int
    outbox: tuple[Envelope, ...] = ()
    answers: Mapping[str, Remembered] = field(default_factory=dict)
    last: Remembered | None = None  # the latest claim's: an identical request gets it again
    recent: tuple[tuple[int, str], ...] = ()  # the latest claims: (revision, fingerprint)
    by: str | None = None  # the writer of the outbox (None: released by the relay)
    outbox_at: datetime | None = None  # when it was claimed, on the writer's real clock

    @property
    def case_id(self) -> str:
        return self.view.case_id


@dataclass(frozen=True)
class Claim:
    """Revision `rev` of a case's head: the view after `outbox`, and the answer owed."""

    view: CaseView
    rev: int
    outbox: Sequence[Envelope]
    remembered: Remembered  # its `at` is the claim's time, on the real clock
    key_id: str | None = None
    forget: tuple[str, ...] = ()  # keys whose answers are past keeping
    by: str = ""  # the writer: the process that claims it

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

    async def readopt(self, view: CaseView) -> None:
        """An adopted head on which no claim was made since, adopted again."""
        ...

    async def claim(self, claim: Claim) -> bool: ...

    async def claim_many(self, claims: Sequence[Claim]) -> list[bool]: ...

    async def orphans(self, writer: str, after: datetime | None, limit: int) -> list[Head]:
        """Heads whose outbox `writer` claimed after `after` (its watermark)."""
        ...

    async def release(self, claims: Sequence[tuple[str, int]]) -> None:
        """These (case, rev) outboxes were published by the relay: no writer's any more."""
        ...

    async def beat(self, writer: str, through: datetime) -> None:
        """`writer` is alive, and published every claim it made before `through`."""
        ...

    async def writers(self) -> list[WriterMark]: ...

    async def retire(self, writer: str) -> None:
        """A dead writer whose every claim was published: its watermark moves past them
        all (it stays known, so the heads it wrote are known published)."""
        ...


@dataclass(frozen=True)
class WriterMark:
    """A writer's watermark, and when it last said it."""

    writer: str
    through: datetime
    alive: datetime
    retired: bool = False


class Publisher(Protocol):
    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Publish; return once Kafka acknowledged all, or raise `Refused(unavailable)`."""
        ...
