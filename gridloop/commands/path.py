"""The one path every command takes: load → decide → claim → publish → remember the answer.

- **load** the case's head (its latest committed view; `gridloop.commands.head`), publishing
  first what an earlier claim may have left unpublished (an outbox newer than its writer's
  watermark);
- a request seen before is answered as it was: the same `Idempotency-Key` (a different
  request under it is refused), or without a key the very request the case's last claim
  came from;
- **decide** on the view (a service's pure core: events, or a `Refused`);
- **claim** the head's next revision with those events and the answer, atomically: a
  command that lost the race decides again on the new head (and is refused there, as a
  rule, with where the case stands);
- **publish** the events and return once Kafka acknowledged them.

The answer is remembered by the claim itself, so a client that retries after a crash or a
503 gets it, and a 2xx means the client's own fact is in the log. A path is one *writer*:
its watermark (`watermark`) says that every claim it made before it is published, and the
relay beside it says so every second (`gridloop.commands.relay`) — instead of a write per
claim. The path knows stores and the log only through their interfaces (`Heads`,
`Publisher`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from gridloop import failpoints
from gridloop.cases.view import CaseView, fold
from gridloop.commands.answer import answer_body
from gridloop.commands.head import (
    Answer,
    Asked,
    Body,
    Claim,
    Head,
    Heads,
    Publisher,
    Remembered,
    WriterMark,
)
from gridloop.refusal import CaseAt, Refused, Why, conflict, invalid, not_found
from schemas.envelope import Envelope
from schemas.events import EventData

# A decision on a case's view at an instant: the instant its events are stamped with, so a
# deadline reckoned "from now" starts when its event says it happened.
Decide = Callable[[CaseView, datetime], Awaitable[Sequence[EventData]]]
Adopt = Callable[[str], Awaitable[CaseView | None]]
Key = tuple[str, int]  # a claim: its case and revision
# Claims lost in a row before a command gives up: each loss means another command moved
# the case, so a few are already a storm.
ATTEMPTS = 8
# How long a head remembers the answer to an `Idempotency-Key` (a client's retries).
KEEP_ANSWERS = timedelta(hours=24)


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
        self.writer = uuid.uuid4().hex[:16]
        self.marks: dict[str, WriterMark] = {}  # the writers' watermarks, as last read
        # Claims made here and not yet known published: by case and revision, each with the
        # claim (a claim whose write or publish failed: the relay's beat tries it again).
        self._pending: dict[Key, Claim] = {}
        self._said = False  # whether this writer has said it exists

    # --- commands --------------------------------------------------------------------------

    async def act(
        self, case_id: str, asked: Asked, decide: Decide, extra: Body | None = None
    ) -> Answer:
        """A command on an existing case."""
        for _ in range(ATTEMPTS):
            head = await self.load(case_id)
            if (again := _replayed(head, asked)) is not None:
                return again
            now = self.clock()  # domain time, which a simulation compresses
            try:
                events = await decide(head.view, now)
            except Refused as refused:
                raise _standing(refused, head.view) from None
            claim = self._claim(head.view, head.rev + 1, events, asked, extra or {}, now)
            claim = replace(claim, forget=_past_keeping(head))
            self._pending[_key(claim)] = claim  # the same claim, with what it forgets
            [stood] = await self._claimed([claim])
            if stood:
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
            self._claim(
                None, 1, openings[i].events, openings[i].asked, openings[i].extra, self.clock()
            )
            for i in todo
        ]
        won = await self._claimed(claims)
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

    async def react(self, reactions: Sequence[Reaction]) -> list[str]:
        """A service's reactions to events (dispatch's to filings and reworks), each decided
        on its case's head and claimed like a command; the ids of cases that have no head
        yet (their reaction waits: the caller retries them)."""
        pending, missing = list(reactions), []
        for _ in range(ATTEMPTS):
            if not pending:
                break
            # One reaction per case in a round: a case's next claim needs the last published.
            now, pending = _one_per_case(pending)
            heads = await self._heads([r.case_id for r in now])
            # The events reacted to were read from the log: their claims are published.
            await self.flush(list(heads.values()), {r.cause for r in now})
            missing += [r.case_id for r in now if r.case_id not in heads]
            claims, of = [], []
            for reaction in now:
                if (head := heads.get(reaction.case_id)) is None:
                    continue
                at = self.clock()
                events = reaction.decide(head.view, at)
                if events is None:  # behind the event: adopted too early, adopted again
                    missing.append(reaction.case_id)
                    await self._readopt(head)
                elif events:
                    claims.append(self.reaction_claim(head, events, reaction.cause, at))
                    of.append(reaction)
            won = await self._claimed(claims)
            await self._publish([c for c, w in zip(claims, won, strict=True) if w])
            # A reaction that lost its claim decides again on the new head.
            pending = [r for r, w in zip(of, won, strict=True) if not w] + pending
        return missing

    def reaction_claim(
        self, head: Head, events: Sequence[EventData], cause: str, at: datetime
    ) -> Claim:
        """The claim of a reaction to the event `cause` (its id) on `head`, decided at `at`:
        known again by that event."""
        asked = Asked("reaction", None, cause)
        return self._claim(head.view, head.rev + 1, events, asked, {}, at)

    # --- heads and their outboxes ------------------------------------------------------------

    async def load(self, case_id: str) -> Head:
        """The case's head, its outbox published; `Refused(not_found)` if there is none."""
        head = await self.heads.load(case_id)
        if head is None and self._adopt is not None:
            view = await self._adopt(case_id)
            head = await self.heads.adopt(view) if view is not None else None
        if head is None:
            raise not_found(("path", "case_id"), f"no case {case_id}")
        await self.flush([head])
        return head

    async def flush(self, heads: Sequence[Head], read: Collection[str] = ()) -> None:
        """Publish the outboxes of these heads that may not be in the log yet (`read`: ids
        of events read from the log). An event published twice has one id: consumers drop
        the second."""
        waiting = [h for h in heads if h.outbox and not self.published(h, read)]
        if waiting:
            await self.publisher.publish([env for h in waiting for env in h.outbox])

    def published(self, head: Head, read: Collection[str] = ()) -> bool:
        """Whether `head`'s outbox is known to be in the log: released by the relay; this
        writer's, published; under its writer's watermark; or holding an event read back."""
        if head.by is None:
            return True
        if head.by == self.writer:
            return (head.case_id, head.rev) not in self._pending
        mark = self.marks.get(head.by)
        if mark is not None and head.outbox_at is not None and head.outbox_at <= mark.through:
            return True
        return any(env.id in read for env in head.outbox)

    def watermark(self) -> datetime:
        """Every claim this writer made before this instant is published."""
        made = [c.remembered.at for c in self._pending.values() if c.remembered.at is not None]
        # A millisecond before: the database keeps times to the millisecond, and a claim
        # stamped in the same millisecond as the mark must stay above it.
        return min(made, default=datetime.now(UTC)) - timedelta(milliseconds=1)

    async def retry(self, older_than: timedelta = timedelta(seconds=10)) -> int:
        """Claims of this writer still pending `older_than` after their stamp, whose write
        or publish failed (a database or broker outage; a command gives up waiting for
        Kafka after 5 s): those that stood are published now, the others forgotten; how
        many were published. Run by the relay before it says the watermark."""
        if not (unsure := list(self._pending.values())):
            return 0
        old = datetime.now(UTC) - older_than  # not those of commands still under way
        unsure = [c for c in unsure if c.remembered.at is not None and c.remembered.at < old]
        heads = await self.heads.load_many(c.case_id for c in unsure)
        stood = [c for c in unsure if _stood(c, heads.get(c.case_id))]
        for claim in unsure:
            if claim not in stood:
                self._pending.pop(_key(claim), None)
        await self._publish(stood)
        return len(stood)

    # --- the claim ---------------------------------------------------------------------------

    def _claim(
        self,
        view: CaseView | None,
        rev: int,
        events: Sequence[EventData],
        asked: Asked,
        extra: Body,
        at: datetime,
    ) -> Claim:
        """The claim of `events`, stamped `at`: the instant they were decided."""
        if not events:
            raise ValueError("a command that claims must decide at least one event")
        envs = [Envelope(e, self.source, at) for e in events]
        after = fold(envs, view)
        answer = Answer(202, answer_body(after, envs) | extra)
        # Stamped on the real clock, as the writers' watermarks and the keys' keeping reckon.
        remembered = Remembered(asked.fingerprint, answer, datetime.now(UTC))
        claim = Claim(after, rev, envs, remembered, asked.key_id, by=self.writer)
        self._pending[_key(claim)] = claim  # pending from its stamp on: under no watermark
        return claim

    async def _claimed(self, claims: Sequence[Claim]) -> list[bool]:
        """Write the claims (pending from their stamp: the watermark stays before them);
        those that lost are no longer pending."""
        if not claims:
            return []
        if not self._said:
            await self.heads.beat(self.writer, self.watermark())  # the relay can find it
            self._said = True
        won = (
            await self.heads.claim_many(claims)
            if len(claims) > 1
            else [await self.heads.claim(claims[0])]
        )
        for claim, stood in zip(claims, won, strict=True):
            if not stood:
                self._pending.pop(_key(claim), None)
        return won

    async def _publish(self, claims: Sequence[Claim]) -> None:
        """Publish the claims' events; once Kafka acknowledged them, they are no longer
        pending (a failure leaves them so: the relay's beat tries them again)."""
        if not claims:
            return
        failpoints.reach("claimed")
        await self.publisher.publish([env for c in claims for env in c.outbox])
        for claim in claims:
            self._pending.pop(_key(claim), None)

    async def _reopened(self, case_id: str, asked: Asked) -> Answer:
        head = await self.load(case_id)
        again = _replayed(head, asked)
        if again is None:
            raise conflict(("path", "case_id"), f"case {case_id} exists already", "exists")
        return again

    async def _readopt(self, head: Head) -> None:
        """A head adopted from the projection, no claim made on it since, adopted again
        from the projection as it stands now."""
        if not head.recent and self._adopt is not None:
            view = await self._adopt(head.case_id)
            if view is not None and view.version > head.view.version:
                await self.heads.readopt(view)

    async def _heads(self, case_ids: Sequence[str]) -> dict[str, Head]:
        heads = await self.heads.load_many(case_ids)
        for case_id in case_ids:
            if case_id not in heads and self._adopt is not None:
                view = await self._adopt(case_id)
                if view is not None:
                    heads[case_id] = await self.heads.adopt(view)
        return heads


@dataclass(frozen=True)
class Reaction:
    """A service's reaction to an event (`cause`, its id) on one case: `decide` gives the
    events the case's view calls for at an instant, none if the case went past the event, and
    None if the view is behind the event (a head adopted from a projection that lagged)."""

    case_id: str
    cause: str
    decide: Callable[[CaseView, datetime], Sequence[EventData] | None]


def _key(claim: Claim) -> Key:
    return claim.case_id, claim.rev


def _stood(claim: Claim, head: Head | None) -> bool:
    """Whether a claim is in its case's head (among its recent claims)."""
    return head is not None and (claim.rev, claim.remembered.fingerprint) in head.recent


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
