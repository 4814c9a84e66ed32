"""consume → handle → produce → commit, once for every service.

At least once: an offset is committed only after the handler's effects are done and the
events it returned are acknowledged by Kafka. Handlers are idempotent, so a record handled
again after a crash changes nothing a user can see.

A record that can never be handled (undecodable, or the handler raises `Poison` or any
error that is not transient) goes to `<topic>.dlq` with the reason, and the loop moves on.
A transient failure (broker or database unreachable) is retried with back-off, without
committing, until it succeeds: nothing is skipped. The one exception is `Retry` (a read
model not caught up yet) that lasts `RETRY_PATIENCE_SECONDS`: such a record is dead-lettered
too, rather than stopping the service for ever.

A commit refused because a rebalance gave the partitions to another member (two workers of a
service in one group) is left undone: the new owner handles those records again from the
last commit, which the handlers' idempotence makes harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pymongo.errors import AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError

from gridloop import tracing
from gridloop.kafka.deadletter import DeadLetters
from gridloop.kafka.metrics import (
    CONSUMED,
    HANDLE_SECONDS,
    LAG,
    REBALANCED_COMMITS,
    RETRIES,
    consuming,
)
from gridloop.kafka.producer import EventProducer
from gridloop.topology import named
from schemas.envelope import Envelope, decode

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], Awaitable[Sequence[Envelope]]]


class Poison(Exception):
    """Raised by a handler for a record it can never handle; the message is the reason."""


class Retry(Exception):
    """Raised by a handler for a record it cannot handle yet (a read model lags behind)."""


# How long the broker may hold a fetch that has nothing new. Kafka answers as soon as a record
# arrives, but the embedded broker (Tansu 0.6) holds the fetch for about this long anyway:
# at aiokafka's default (500 ms) every hop of the loop cost ≈ 200 ms (bench/bench_e2e.py).
FETCH_MAX_WAIT_MS = 50

# A record that a read model has not caught up with in this long never will be (its case was
# dead-lettered upstream, say): it is dead-lettered with the reason, for ops to see and
# replay, instead of holding its partition (and, polls at once, every partition) for ever.
RETRY_PATIENCE_SECONDS = 300.0

TRANSIENT: tuple[type[BaseException], ...] = (
    Retry,
    KafkaError,
    ConnectionFailure,
    AutoReconnect,
    ServerSelectionTimeoutError,
    OSError,
    TimeoutError,
)


class Pipeline:
    """One consumer group: `handler` runs for every record of `topics`."""

    def __init__(
        self,
        group: str,
        topics: Sequence[str],
        handler: Handler,
        producer: EventProducer,
        bootstrap_servers: str,
        session_timeout_ms: int = 10_000,
        max_backoff_seconds: float = 5.0,
        retry_patience_seconds: float = RETRY_PATIENCE_SECONDS,
    ) -> None:
        # In the producer's namespace (gridloop/topology.py): the group, the topics, and so
        # the dead-letter topics (named after the record's topic).
        self.group = named(producer.namespace, group)
        self.topics = [named(producer.namespace, t) for t in topics]
        self._dead_letters = DeadLetters(self.group, self.topics, producer.send_raw)
        consuming(self.group, self.topics)
        self._handler = handler
        self._producer = producer
        self._max_backoff = max_backoff_seconds
        self._retry_patience = retry_patience_seconds
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=bootstrap_servers,
            group_id=self.group,
            client_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(session_timeout_ms // 5, 100),
            rebalance_timeout_ms=max(session_timeout_ms, 1_000),
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )

    async def run(self, stop: asyncio.Event) -> None:
        await self._consumer.start()
        try:
            while not stop.is_set():
                batch = await self._consumer.getmany(timeout_ms=200, max_records=500)
                for tp, records in batch.items():
                    done = await self._handle_partition(records, stop)
                    if done is not None:
                        await self._commit({tp: done + 1})
                await self._measure_lag()
        finally:
            await self._consumer.stop()

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit `offsets`, unless the group rebalanced meanwhile: the partitions may be
        another member's now, and the records since the last commit are handled again
        (by it, or by this member when they come back)."""
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            REBALANCED_COMMITS.labels(self.group).inc()
            log.warning("%s: commit left to the next owner after a rebalance: %r", self.group, exc)

    async def _measure_lag(self) -> None:
        """`gridloop_consumer_lag` per topic: what the group has still to read in the
        partitions this member holds (0 for a topic it holds none of, after a rebalance too)."""
        lag = dict.fromkeys(self.topics, 0)
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is not None:
                position = await self._consumer.position(tp)
                lag[tp.topic] = lag.get(tp.topic, 0) + max(high - position, 0)
        for topic, behind in lag.items():
            LAG.labels(self.group, topic).set(behind)

    async def _handle_partition(
        self, records: list[ConsumerRecord[bytes, bytes]], stop: asyncio.Event
    ) -> int | None:
        """Handle records in order; return the last offset fully handled."""
        last: int | None = None
        for record in records:
            if not await self._handle_until_done(record, stop):
                break  # stopping: leave the rest uncommitted for the next owner
            last = record.offset
        if last is not None and last != records[-1].offset:
            # Stopped mid-batch: rewind so this member does not skip what it fetched.
            self._consumer.seek(TopicPartition(records[0].topic, records[0].partition), last + 1)
        return last

    async def _handle_until_done(
        self, record: ConsumerRecord[bytes, bytes], stop: asyncio.Event
    ) -> bool:
        backoff: float | None = None
        waiting_since = time.monotonic()
        while True:
            try:
                await self._handle(record)
                return True
            except TRANSIENT as exc:
                waited = time.monotonic() - waiting_since
                if isinstance(exc, Retry) and waited > self._retry_patience:
                    await self._dead_letters.send(
                        record, Poison(f"{exc!r}, still after {waited:.0f} s")
                    )
                    return True
                backoff = self._backoff(exc, backoff)
                RETRIES.labels(self.group).inc()
                log.warning(
                    "%s: transient failure, retrying in %.2fs: %r", self.group, backoff, exc
                )
            if stop.is_set():
                return False
            await asyncio.sleep(backoff)

    def _backoff(self, exc: BaseException, last: float | None) -> float:
        """The wait before the next try after `exc` (`last`: the wait before this one). A
        read model behind by a poll (`Retry`) catches up in milliseconds: look again soon,
        not after the seconds an unreachable server is given."""
        first, cap = (0.02, 0.25) if isinstance(exc, Retry) else (0.1, self._max_backoff)
        return first if last is None else min(last * 2, cap)

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        started = time.perf_counter()
        with tracing.handling(self.group, record.topic, record.headers):
            try:
                envelope = decode(record.value, record.headers)
                derived = await self._handler(envelope)
            except TRANSIENT:
                raise
            except Exception as exc:  # EnvelopeError, Poison or a bug: never handleable as is
                await self._dead_letters.send(record, exc)
                return
            await self._producer.publish(derived)
        CONSUMED.labels(self.group, record.topic).inc()
        HANDLE_SECONDS.labels(self.group).observe(time.perf_counter() - started)
