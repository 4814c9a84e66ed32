"""The one path every command takes: load → decide → claim → publish → remember the answer.

- **load** the case's head (its latest committed view; `gridloop.commands.head`), publishing
  first whatever an earlier claim left unpublished;
- a request seen before is answered as it was: the same `Idempotency-Key` (a different
  request under it is refused), or without a key the very request the case's last claim
  came from;
- **decide** on the view (a service's pure core: events, or a `Refused`);
- **claim** the head's next revision with those events and the answer, atomically: a
  command that lost the race decides again on the new head (and is refused there, as a
  rule, with where the case stands);
- **publish** the events and return once Kafka acknowledged them. The outbox is settled a
  moment later, in one write for all the claims published meanwhile (`Settling`): settling
  is bookkeeping for the relay, and a claim may replace an outbox its claimer published.

The answer is remembered by the claim itself, so a client that retries after a crash or a
503 gets it, and a 2xx means the client's own fact is in the log. The path knows stores and
the log only through their interfaces (`Heads`, `Publisher`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from gridloop import failpoints
from gridloop.cases.view import CaseView, fold
from gridloop.commands.answer import answer_body
from gridloop.commands.head import Answer, Asked, Body, Claim, Head, Heads, Publisher, Remembered
from gridloop.refusal import CaseAt, Refused, Why, conflict, invalid, not_found
from schemas.envelope import Envelope
from schemas.events import EventData

log = logging.getLogger(__name__)
Decide = Callable[[CaseView], Awaitable[Sequence[EventData]]]
Adopt = Callable[[str], Awaitable[CaseView | None]]
# Claims lost in a row before a command gives up: each loss means another command moved
# the case, so a few are already a storm.
ATTEMPTS = 8
# How long a head remembers the answer to an `Idempotency-Key` (a client's retries).
KEEP_ANSWERS = timedelta(hours=24)
# How long published claims wait to be settled together (one write for all of them).
SETTLE_AFTER_SECONDS = 0.02


@dataclass(frozen=True)
class Opening:
    """A command that opens a case (a report): its events, how it is known again, and
    what its answer says besides the events (a follow token)."""

    events: Sequence[EventData]
    asked: Asked
    extra: Body = field(default_factory=dict)


class CommandPath:
    def __init__(
        self,
        heads: Heads,
        publisher: Publisher,
        source: str,
        clock: Callable[[], datetime],
        adopt: Adopt | None = None,
    ) -> None:
        self.heads, self.publisher, self.source, self.clock = heads, publisher, source, clock
        self._adopt = adopt
        self.settling = Settling(heads)

    async def act(
        self, case_id: str, asked: Asked, decide: Decide, extra: Body | None = None
    ) -> Answer:
        """A command on an existing case."""
        for _ in range(ATTEMPTS):
            head = await self.load(case_id)
            if (again := _replayed(head, asked)) is not None:
                return again
            try:
                events = await decide(head.view)
            except Refused as refused:
                raise _standing(refused, head.view) from None
            claim = self._claim(head.view, head.rev + 1, events, asked, extra or {})
            claim = replace(claim, forget=_past_keeping(head))
            if await self.heads.claim(claim):
                await self._publish([claim])
                return claim.remembered.answer
        raise conflict(("state",), f"case {case_id} is changing too fast; retry", "busy")

    async def open(self, openings: Sequence[Opening]) -> list[Answer]:
        """Commands that open cases (reports): each claims its case's first revision. A
        case that exists already is a request seen before (case ids of keyed requests
        derive from the key): answered as before, or refused before anything is claimed."""
        keyed = [o.events[0].case_id for o in openings if o.asked.key is not None]
        seen = await self.heads.load_many(keyed) if keyed else {}
        await self.flush(list(seen.values()))
        answers: list[Answer | None] = [
            _replayed(seen[o.events[0].case_id], o.asked) if o.events[0].case_id in seen else None
            for o in openings
        ]
        todo = [i for i, a in enumerate(answers) if a is None]
        claims = [
            self._claim(None, 1, openings[i].events, openings[i].asked, openings[i].extra)
            for i in todo
        ]
        won = await self.heads.claim_many(claims)
        for i, claim, w in zip(todo, claims, won, strict=True):
            answers[i] = (
                claim.remembered.answer
                if w
                else await self._reopened(claim.case_id, openings[i].asked)
            )
        await self._publish([c for c, w in zip(claims, won, strict=True) if w])
        return [a for a in answers if a is not None]

    async def replay(self, case_id: str, asked: Asked) -> Answer | None:
        """The answer this request got before, if its case's head remembers one (an
        opening retried with its key: the costly decision need not be made again)."""
        head = await self.heads.load(case_id)
        if head is None:
            return None
        await self.flush([head])
        return _replayed(head, asked)

    async def load(self, case_id: str) -> Head:
        """The case's head, its outbox published; `Refused(not_found)` if there is none."""
        head = await self.heads.load(case_id)
        if head is None and self._adopt is not None:
            view = await self._adopt(case_id)
            head = await self.heads.adopt(view) if view is not None else None
        if head is None:
            raise not_found(("path", "case_id"), f"no case {case_id}")
        if head.outbox:
            await self.flush([head])
        return head

    async def flush(self, heads: Sequence[Head]) -> None:
        """Publish what earlier claims left in these heads' outboxes (but what this process
        published and has still to settle), then settle them. An event published twice has
        one id: consumers drop the second."""
        waiting = [h for h in heads if h.outbox and not self.settling.published(h)]
        if waiting:
            await self.publisher.publish([env for h in waiting for env in h.outbox])
            self.settling.add([(h.case_id, h.rev) for h in waiting])

    def _claim(
        self,
        view: CaseView | None,
        rev: int,
        events: Sequence[EventData],
        asked: Asked,
        extra: Body,
    ) -> Claim:
        if not events:
            raise ValueError("a command that claims must decide at least one event")
        now = self.clock()  # domain time, which a simulation compresses
        envs = [Envelope(e, self.source, now) for e in events]
        after = fold(envs, view)
        answer = Answer(202, answer_body(after, envs) | extra)
        # Remembered on the real clock, as the relay and the keys' keeping reckon.
        remembered = Remembered(asked.fingerprint, answer, datetime.now(UTC))
        return Claim(after, rev, envs, remembered, asked.key_id)

    async def _publish(self, claims: Sequence[Claim]) -> None:
        if not claims:
            return
        failpoints.reach("claimed")
        await self.publisher.publish([env for c in claims for env in c.outbox])
        self.settling.add([(c.case_id, c.rev) for c in claims])

    async def _reopened(self, case_id: str, asked: Asked) -> Answer:
        head = await self.load(case_id)
        again = _replayed(head, asked)
        if again is None:
            raise conflict(("path", "case_id"), f"case {case_id} exists already", "exists")
        return again

    async def react(self, reactions: Sequence[Reaction]) -> list[str]:
        """A service's reactions to events (dispatch's to filings and reworks), each decided
        on its case's head and claimed like a command; the ids of cases that have no head
        yet (their reaction waits: the caller retries them)."""
        pending, missing = list(reactions), []
        for _ in range(ATTEMPTS):
            if not pending:
                break
            # One reaction per case in a round: a case's next claim needs the last settled.
            now, pending = _one_per_case(pending)
            heads = await self._heads([r.case_id for r in now])
            await self.flush(list(heads.values()))
            missing += [r.case_id for r in now if r.case_id not in heads]
            decided = [(r, heads[r.case_id]) for r in now if r.case_id in heads]
            claims, of = [], []
            for reaction, head in decided:
                if events := reaction.decide(head.view):
                    claims.append(self.reaction_claim(head, events, reaction.cause))
                    of.append(reaction)
            won = await self.heads.claim_many(claims)
            await self._publish([c for c, w in zip(claims, won, strict=True) if w])
            # A reaction that lost its claim decides again on the new head.
            pending = [r for r, w in zip(of, won, strict=True) if not w] + pending
        return missing

    def reaction_claim(self, head: Head, events: Sequence[EventData], cause: str) -> Claim:
        """The claim of a reaction to the event `cause` (its id) on `head`: known again by
        that event."""
        return self._claim(head.view, head.rev + 1, events, Asked("reaction", None, cause), {})

    async def _heads(self, case_ids: Sequence[str]) -> dict[str, Head]:
        heads = await self.heads.load_many(case_ids)
        for case_id in case_ids:
            if case_id not in heads and self._adopt is not None:
                view = await self._adopt(case_id)
                if view is not None:
                    heads[case_id] = await self.heads.adopt(view)
        return heads


class Settling:
    """Claims published by this process, settled together a moment later. Until then they
    are known here as published, so a command that loads such a head does not publish its
    outbox again; a process that dies first leaves them to the relay."""

    def __init__(self, heads: Heads) -> None:
        self.heads = heads
        self._waiting: dict[tuple[str, int], None] = {}
        self._task: asyncio.Task[None] | None = None

    def published(self, head: Head) -> bool:
        return (head.case_id, head.rev) in self._waiting

    def add(self, claims: Sequence[tuple[str, int]]) -> None:
        self._waiting.update(dict.fromkeys(claims))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._settle())

    async def drain(self) -> None:
        """Settle what is waiting now (a service stopping, a test)."""
        while self._task is not None and not self._task.done():
            await self._task

    async def _settle(self) -> None:
        while self._waiting:
            await asyncio.sleep(SETTLE_AFTER_SECONDS)
            claims = list(self._waiting)
            try:
                await self.heads.settle(claims)
            except Exception:  # the database: the relay publishes them again later
                log.warning("%d published claims not settled", len(claims), exc_info=True)
            for claim in claims:
                self._waiting.pop(claim, None)


@dataclass(frozen=True)
class Reaction:
    """A service's reaction to an event (`cause`, its id) on one case: `decide` gives the
    events the case's view calls for, none if the case went past the event."""

    case_id: str
    cause: str
    decide: Callable[[CaseView], Sequence[EventData]]


def _one_per_case(reactions: list[Reaction]) -> tuple[list[Reaction], list[Reaction]]:
    seen: set[str] = set()
    now: list[Reaction] = []
    later: list[Reaction] = []
    for r in reactions:
        (later if r.case_id in seen else now).append(r)
        seen.add(r.case_id)
    return now, later


def _replayed(head: Head, asked: Asked) -> Answer | None:
    """The answer already given to this request, if the head remembers one."""
    if asked.key_id is not None:
        remembered = head.answers.get(asked.key_id)
        if remembered is None:
            return None
        if remembered.fingerprint != asked.fingerprint:
            raise invalid(
                ("header", "Idempotency-Key"),
                "this key was used for a different request",
                "idempotency_key_reused",
            )
        return remembered.answer
    last = head.last
    return last.answer if last is not None and last.fingerprint == asked.fingerprint else None


def _past_keeping(head: Head) -> tuple[str, ...]:
    """Keys whose answers the head has kept long enough: forgotten by the next claim."""
    since = datetime.now(UTC) - KEEP_ANSWERS
    return tuple(k for k, r in head.answers.items() if r.at is not None and r.at < since)


def _standing(refused: Refused, view: CaseView) -> Refused:
    """A conflict says where the case stands, so a client that lost a race can see why."""
    if refused.why is not Why.conflict:
        return refused
    return refused.standing(CaseAt(view.state.value, view.version))
