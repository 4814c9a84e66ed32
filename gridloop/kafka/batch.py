"""A `Pipeline` that hands everything one poll brought, whatever partitions it holds, to a
batch handler at once and commits the poll at once: one database round trip per poll
instead of several per event (projections: `CaseStore.apply_many`; evaluation:
`ScoreStore.apply_many`, where a case's events on several topics fold together).

A batch handler that derives events (dispatch: a `case.dispatched` per filing) returns them
as `Publish(envelopes)`; they are published, and acknowledged by Kafka, before the commit.
Whatever else a handler returns is ignored.

The guarantees are the pipeline's (`gridloop.kafka.Pipeline`): offsets are committed only
after the batch is written and its events acknowledged, a transient failure (`Retry`
included) retries the whole poll (the batch handler must be idempotent and order-tolerant
across partitions; within a partition the order is kept; derived events have deterministic
ids, so one published again is dropped by its consumers), and anything else falls back to
the pipeline's record-by-record path with the one-envelope `handler`, which dead-letters
the one record at fault and handles the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiokafka import ConsumerRecord, TopicPartition

from gridloop import tracing
from gridloop.kafka.consumer import RETRY_PATIENCE_SECONDS, TRANSIENT, Handler, Pipeline, Retry
from gridloop.kafka.metrics import CONSUMED, HANDLE_SECONDS, RETRIES
from gridloop.kafka.producer import EventProducer
from schemas.envelope import Envelope, EnvelopeError, decode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Publish:
    """What a batch handler returns for the pipeline to publish before it commits the poll."""

    envelopes: Sequence[Envelope]


# A poll's envelopes → its effects done, and `Publish` or anything else (ignored).
# A poll a read model is still behind on after this long goes record by record.
POLL_PATIENCE = 5.0
BatchHandler = Callable[[Sequence[Envelope]], Awaitable[object]]
Poll = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class BatchPipeline(Pipeline):
    """One consumer group: `batch` runs once for each poll of `topics` (the events it returns
    as `Publish` published); `handler` (one envelope, events it returns published) is the
    fallback for a poll that fails otherwise than transiently."""

    def __init__(
        self,
        group: str,
        topics: Sequence[str],
        handler: Handler,
        batch: BatchHandler,
        producer: EventProducer,
        bootstrap_servers: str,
        session_timeout_ms: int = 10_000,
        retry_patience_seconds: float = RETRY_PATIENCE_SECONDS,
    ) -> None:
        super().__init__(
            group,
            topics,
            handler,
            producer,
            bootstrap_servers,
            session_timeout_ms,
            retry_patience_seconds=retry_patience_seconds,
        )
        self._batch = batch

    async def run(self, stop: asyncio.Event) -> None:
        await self._consumer.start()
        try:
            while not stop.is_set():
                polled = await self._consumer.getmany(timeout_ms=200, max_records=500)
                if polled and (done := await self._handle_poll(polled, stop)):
                    await self._commit(done)
                await self._measure_lag()
        finally:
            await self._consumer.stop()

    async def _handle_poll(self, polled: Poll, stop: asyncio.Event) -> dict[TopicPartition, int]:
        """Handle `polled`; the offsets to commit (none if stopped before it was done)."""
        records = [r for rs in polled.values() for r in rs]
        try:
            envs = [decode(r.value, r.headers) for r in records]
        except EnvelopeError:
            return await self._one_by_one(polled, stop)  # dead-letters the one at fault
        backoff: float | None = None
        waiting_since = time.monotonic()
        while True:
            started = time.perf_counter()
            try:
                with tracing.handling_poll(self.group, records):
                    if isinstance(derived := await self._batch(envs), Publish):
                        await self._producer.publish(derived.envelopes)
                break
            except TRANSIENT as exc:
                if isinstance(exc, Retry) and time.monotonic() - waiting_since > POLL_PATIENCE:
                    # Still behind: record by record, the one waited for holds only those
                    # after it in its partition, and is dead-lettered if it never comes.
                    return await self._one_by_one(polled, stop)
                backoff = self._backoff(exc, backoff)
                RETRIES.labels(self.group).inc()
                log.warning("%s: transient failure, retrying the poll: %r", self.group, exc)
                if stop.is_set():
                    return {}  # nothing committed: the next owner handles it again
                await asyncio.sleep(backoff)
            except Exception:
                log.exception("%s: a poll failed; handling it record by record", self.group)
                return await self._one_by_one(polled, stop)
        each = (time.perf_counter() - started) / len(records)
        for r in records:
            CONSUMED.labels(self.group, r.topic).inc()
            HANDLE_SECONDS.labels(self.group).observe(each)
        return {tp: rs[-1].offset + 1 for tp, rs in polled.items() if rs}

    async def _one_by_one(self, polled: Poll, stop: asyncio.Event) -> dict[TopicPartition, int]:
        done = {}
        for tp, records in polled.items():
            if (last := await self._handle_partition(records, stop)) is not None:
                done[tp] = last + 1
        return done
