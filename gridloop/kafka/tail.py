"""Follow the lifecycle topics from now on, for a screen that shows changes live (the
workbench): every partition from its end, no consumer group and no commits — each process
that follows sees every record, and a restart simply follows from the new end (a screen
reloads what it shows from the read model; only the news comes from here). Records that do
not decode are skipped: the services dead-letter them."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer

from gridloop.kafka.batch import BatchHandler
from gridloop.kafka.consumer import FETCH_MAX_WAIT_MS
from gridloop.kafka.topics import lifecycle_partitions
from schemas.envelope import Envelope, EnvelopeError, decode

log = logging.getLogger(__name__)


async def tail(
    bootstrap: str, apply: BatchHandler, stop: asyncio.Event, namespace: str = ""
) -> None:
    """Every lifecycle record published from now on through `apply`, a fetch at a time,
    until `stop`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    try:
        partitions = lifecycle_partitions(namespace)
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=250, max_records=1000)
            envs: list[Envelope] = []
            for tp, records in batch.items():
                for record in records:
                    try:
                        envs.append(decode(record.value, record.headers))
                    except EnvelopeError as exc:
                        log.debug("skipping %s@%d: %s", tp, record.offset, exc)
            if envs:
                await apply(envs)
    finally:
        await consumer.stop()
