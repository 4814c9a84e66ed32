"""Replay the lifecycle topics from their first record, for a read model rebuilt from the
log (`gridloop projections rebuild`, `gridloop scores rebuild`).

Each partition is read to the end it had when the replay began: its high watermark at the
first fetch (the embedded broker's ListOffsets can answer short of the last batch, so it is
not asked). Every fetch goes to `apply` at once, as a consumer's poll does. Records that do
not decode are skipped and counted: the services dead-lettered them when they first came.
No offsets are committed: the services' own groups resume where they stood.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from gridloop.kafka.batch import BatchHandler
from gridloop.kafka.topics import lifecycle_partitions
from schemas.envelope import Envelope, EnvelopeError, decode

log = logging.getLogger(__name__)


async def replay(bootstrap: str, apply: BatchHandler, namespace: str = "") -> tuple[int, int]:
    """Every lifecycle record of `namespace` through `apply`; (applied, skipped)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    applied = skipped = 0
    try:
        partitions = lifecycle_partitions(namespace)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = {}
        caught_up = False
        while not caught_up:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            for tp in partitions:
                if tp not in ends and (high := consumer.highwater(tp)) is not None:
                    ends[tp] = high
            envs: list[Envelope] = []
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends.get(tp, record.offset + 1):
                        break
                    try:
                        envs.append(decode(record.value, record.headers))
                    except EnvelopeError as exc:
                        skipped += 1
                        log.warning("skipping %s@%d: %s", tp, record.offset, exc)
            if envs:
                await apply(envs)
                applied += len(envs)
            caught_up = len(ends) == len(partitions) and all(
                [await consumer.position(tp) >= end for tp, end in ends.items()]
            )
    finally:
        await consumer.stop()
    return applied, skipped
