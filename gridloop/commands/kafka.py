"""The command path's publisher: the shared producer, bounded in time.

A command answers 503 rather than wait for ever on an unreachable broker. Its claim
stands: its events are in its case's outbox, published by the next command on the case or
by the relay once the broker answers, and a retry (same `Idempotency-Key`, or the same
request) gets the answer the claim remembered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from gridloop.kafka import EventProducer
from gridloop.refusal import Refused, Why
from schemas.envelope import Envelope

# How long a request waits for Kafka's acknowledgement before it is refused. Without a
# bound, an unreachable broker holds every request for minutes (the client's request
# timeout, then its retries) and callers see no answer instead of a 503.
PUBLISH_TIMEOUT_SECONDS = 5.0


class LogPublisher:
    def __init__(self, producer: EventProducer) -> None:
        self.producer = producer

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        await publish_or_refuse(self.producer, envelopes)


async def publish_or_refuse(producer: EventProducer, envelopes: Sequence[Envelope]) -> None:
    """Publish, or refuse the request with 503: never acknowledge what Kafka has not.

    A refused request's events may still reach the log later (they were sent, only not
    acknowledged in time); they have the ids of their facts, so consumers drop a repeat."""
    # Shielded: giving up waiting must not cancel the sends aiokafka already holds.
    sending = asyncio.ensure_future(producer.publish(envelopes))
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            await asyncio.shield(sending)
    except (KafkaError, TimeoutError) as exc:
        sending.add_done_callback(_retrieve)
        raise Refused(
            Why.unavailable,
            ("kafka",),
            f"the event log is unavailable ({type(exc).__name__}); "
            "not acknowledged: retry later with the same Idempotency-Key",
        ) from exc


def _retrieve(task: asyncio.Future[None]) -> None:
    """Collect the late outcome of a publish the request stopped waiting for."""
    if not task.cancelled():
        task.exception()
