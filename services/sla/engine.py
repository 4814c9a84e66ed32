"""The SLA engine between its table and Kafka; the rules are the core's (`services.sla.core`),
the faust wiring is the app's (`services.sla.app`).

- `track`: a lifecycle event moves the case's clocks in the table (or takes a finished case
  out of it).
- `scan`: pops from the due-time index only the cases whose next warning, breach or
  escalation has fallen due, sends those events, and once Kafka has acknowledged them marks
  them on the case's clocks (the table's changelog). A crash between the two sends an event
  again after recovery, with the same deterministic id, which every consumer drops; marking
  only after the acknowledgement means none is lost.
- `hold`: the tick in flight finishes (its events acknowledged and marked) and no other
  begins until `resume` (after a rebalance: the partitions' next owner recovers the marks)
  or for good (a stop), so neither sends a fact twice; only a crash may.

The due-time index (`services.sla.index`) and the open-clock counts live in memory and are
rebuilt from the table after every recovery (start-up and rebalance), so a restart resumes
where the table left off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import datetime, timedelta

from gridloop.citypack.sla import SlaPolicy
from schemas.envelope import Envelope
from schemas.events import SlaEvent
from services.sla import metrics
from services.sla.core import (
    CaseClocks,
    apply,
    due_events,
    from_text,
    leaves_table,
    marked,
    measured,
    next_due,
    to_text,
)
from services.sla.index import DueIndex
from services.sla.table import case_partition

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0  # a case whose events could not be sent is tried again after this
ROUNDS = 4  # per tick: a breach, then the escalations it opens (each after its breach)
MAX_PER_TICK = 20_000  # the rest waits for the next tick (bounded latency of a tick)

# Sends an SLA event; what it returns is awaited for Kafka's acknowledgement.
Send = Callable[[SlaEvent], Awaitable[Awaitable[object]]]
# The latest committed version of each case that has a head (`gridloop.commands`).
Versions = Callable[[list[str]], Awaitable[dict[str, int]]]


async def _no_heads(case_ids: list[str]) -> dict[str, int]:
    return {}


Sent = list[tuple[str, list[SlaEvent]]]  # the acknowledged events, by case


class Engine:
    """`table`: case id → the case's clocks as text; `owned()`: the partitions this worker
    holds now (a case of another is not ours to mark)."""

    def __init__(
        self,
        policy: SlaPolicy,
        table: MutableMapping[str, str],
        send: Send,
        owned: Callable[[], set[int]],
        versions: Versions = _no_heads,
    ) -> None:
        self.policy, self.table, self._send, self._owned = policy, table, send, owned
        self._versions = versions
        self.index = DueIndex()
        self.open = metrics.OpenClocks()
        self._ticking = asyncio.Lock()  # one tick at a time; `hold` waits for it
        self._held = False

    def track(self, env: Envelope) -> None:
        case_id = env.data.case_id
        before = from_text(self.table.get(case_id))
        change = apply(before, env.data, env.time, self.policy)
        if change is None:
            return
        if leaves_table(change, env.data):
            if before is not None:
                del self.table[case_id]  # a tombstone: the changelog forgets the case too
            self.stored(case_id, before, None)
        else:
            self.table[case_id] = to_text(change.state)
            self.stored(case_id, before, change.state)
        metrics.observe(measured(change, env.data), change.closed_case)

    async def scan(self, now: datetime) -> None:
        async with self._ticking:
            if not self._held:
                await self._tick(now)

    async def hold(self) -> None:
        """Let the tick in flight finish and begin no other until `resume`: its marks are
        table writes, which the caller then flushes to the changelog."""
        self._held = True
        async with self._ticking:
            pass

    def resume(self) -> None:
        self._held = False

    async def _tick(self, now: datetime) -> None:
        due = self.index.pop_due(now, MAX_PER_TICK)
        for _ in range(ROUNDS):
            if not due:
                break
            due = self.mark(await self.send_due(due, now), now)
        for case_id in due:  # more rounds than a ladder has rungs: next tick
            self.retry_later(case_id, now)
        metrics.DUE_INDEX.set(len(self.index))

    async def send_due(self, cases: list[str], now: datetime) -> Sent:
        """Send what is due for `cases`; the events Kafka acknowledged, by case."""
        pending = []
        for case_id, events in await self._due(cases, now):
            acks = [await self._send(event) for event in events]
            pending.append((case_id, events, acks))
        sent = []
        for case_id, events, acks in pending:
            outcomes = await asyncio.gather(*acks, return_exceptions=True)
            failed = [o for o in outcomes if isinstance(o, BaseException)]
            if failed:
                log.warning("SLA events of %s not acknowledged: %r", case_id, failed[0])
                self.retry_later(case_id, now)
            acked = zip(events, outcomes, strict=True)
            sent.append((case_id, [e for e, o in acked if not isinstance(o, BaseException)]))
        return sent

    async def _due(self, cases: list[str], now: datetime) -> list[tuple[str, list[SlaEvent]]]:
        """The events due for the cases of ours, decided like every command on the case's
        latest committed version: a case whose head moved past what the table has applied
        (the event that moved it is still on its way here) waits for it."""
        mine, found = self._owned(), []
        for case_id in cases:
            state = from_text(self.table.get(case_id))
            if state is None or case_partition(case_id) not in mine:
                continue  # closed, or its partition moved to another worker
            if events := due_events(case_id, state, now, self.policy):
                found.append((case_id, state, events))
            else:
                self.retry_later(case_id, now)  # its next due time is not reached after all
        heads = await self._latest([case_id for case_id, _, _ in found])
        current = []
        for case_id, state, events in found:
            if heads.get(case_id, state.version) > state.version:
                metrics.STALE.inc()
                self.retry_later(case_id, now)
            else:
                current.append((case_id, events))
        return current

    async def _latest(self, cases: list[str]) -> dict[str, int]:
        """The heads' versions; none when the database does not answer (an SLA event is a
        fact of time, sent rather than held back by an outage)."""
        if not cases:
            return {}
        try:
            return await self._versions(cases)
        except Exception as exc:
            log.warning(
                "heads of %d cases not read, sending as the table has them: %r", len(cases), exc
            )
            return {}

    def mark(self, sent: Sent, now: datetime) -> list[str]:
        """Mark acknowledged events on their clocks; the cases with more due now."""
        again = []
        for case_id, events in sent:
            before = from_text(self.table.get(case_id))
            if before is None:
                continue
            after = marked(before, events, self.policy)
            for event in events:
                metrics.count_sent(event, now)
            if after is not before:
                self.table[case_id] = to_text(after)
                self.stored(case_id, before, after)
            if self.due_again(case_id, now):
                again.append(case_id)
        return again

    def stored(self, case_id: str, before: CaseClocks | None, after: CaseClocks | None) -> None:
        """Keep the index and gauges in step with a table write (None: a deletion)."""
        self.open.change(before, after)
        self.index.schedule(case_id, None if after is None else next_due(after, self.policy))
        metrics.DUE_INDEX.set(len(self.index))

    def rebuild(self) -> None:
        """One pass over the table, holding one decoded case at a time: a list of every
        decoded case (as before) cost ≈ 0.8 GiB of peak memory at 1,000,000 cases."""
        self.index.clear()
        cases = 0

        def states() -> Iterator[CaseClocks]:
            nonlocal cases
            for case_id, raw in self.table.items():
                state = from_text(raw)
                if state is None:
                    continue
                cases += 1
                self.index.schedule(case_id, next_due(state, self.policy))
                yield state

        self.open.reset(states())
        metrics.DUE_INDEX.set(len(self.index))
        log.info("due-time index rebuilt: %d cases, %d due later", cases, len(self.index))

    def retry_later(self, case_id: str, now: datetime) -> None:
        """Look at a case again in RETRY_SECONDS (its events could not be sent, or nothing
        it says is due could be emitted yet): never a busy loop on one case."""
        self.index.schedule(case_id, now + timedelta(seconds=RETRY_SECONDS))

    def due_again(self, case_id: str, now: datetime) -> bool:
        """Whether a case just marked has more due now (the escalations its breach opens);
        if so it leaves the index, for the next round of this tick."""
        when = self.index.when(case_id)
        if when is None or when > now.timestamp():
            return False
        self.index.schedule(case_id, None)
        return True
