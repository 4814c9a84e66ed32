"""The projections service: every lifecycle topic → the `cases` collection, and every
accepted action → the `audit` trail (`services/projections/audit.py`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from gridloop.audit import AuditTrail
from gridloop.config import Settings
from gridloop.kafka import ensure_topics
from gridloop.mongo import connect, database
from gridloop.runtime import infrastructure, ops_app, serve
from schemas.envelope import Envelope, EnvelopeError, decode
from schemas.topics import LIFECYCLE_TOPICS
from services.projections.audit import audit_record
from services.projections.store import CaseStore

GROUP = "projections"


async def run(settings: Settings) -> None:
    async with infrastructure(settings, GROUP) as infra:
        store, trail = CaseStore(infra.db), AuditTrail(infra.db)
        await store.create_indexes()
        await trail.create_indexes()

        async def project(env: Envelope) -> Sequence[Envelope]:
            await store.apply(env)
            await audit(trail, env)
            return ()

        pipeline = infra.pipeline(GROUP, [t.name for t in LIFECYCLE_TOPICS], project)
        app = ops_app("gridloop projections")
        await serve(app, settings.host, settings.projections_port, [pipeline.run])


log = logging.getLogger(__name__)


async def audit(trail: AuditTrail, env: Envelope) -> None:
    """Copy an accepted action into the audit trail (once: keyed by the event id)."""
    if (record := audit_record(env)) is not None:
        await trail.add(record)


async def rebuild(settings: Settings) -> tuple[int, int]:
    """Drop the `cases` collection and replay every lifecycle topic into it, from the first
    record to the end each partition had when the rebuild began; return (applied, skipped).

    The audit trail is not dropped (it also holds what no event carries: refusals and
    reads); the actions replayed into it are the records it already has, by event id.

    Run it with the projections service stopped: its group's offsets stay where they are, so
    when it starts again it projects what arrived during the rebuild. Records that do not
    decode are skipped (the service dead-lettered them when they first came).
    """
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        replication=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
    )
    client = connect(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    applied = skipped = 0
    try:
        store, trail = CaseStore(database(client, settings)), AuditTrail(database(client, settings))
        await store.cases.drop()
        await store.create_indexes()
        partitions = [
            TopicPartition(t.name, p) for t in LIFECYCLE_TOPICS for p in range(t.partitions)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        # The end of each partition is its high watermark at the first fetch (the embedded
        # broker's ListOffsets can answer short of the last batch, so it is not asked).
        ends: dict[TopicPartition, int] = {}
        caught_up = False
        while not caught_up:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            for tp in partitions:
                if tp not in ends and (high := consumer.highwater(tp)) is not None:
                    ends[tp] = high
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends.get(tp, record.offset + 1):
                        break
                    try:
                        env = decode(record.value, record.headers)
                        await store.apply(env)
                        await audit(trail, env)
                        applied += 1
                    except EnvelopeError as exc:
                        skipped += 1
                        log.warning("skipping %s@%d: %s", tp, record.offset, exc)
            caught_up = len(ends) == len(partitions) and all(
                [await consumer.position(tp) >= end for tp, end in ends.items()]
            )
    finally:
        await consumer.stop()
        await client.close()
    return applied, skipped
