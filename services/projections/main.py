"""The projections service: every lifecycle topic → the `cases` collection, and every
accepted action → the `audit` trail (`services/projections/audit.py`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

from pymongo.errors import BulkWriteError

from gridloop.audit import AuditTrail
from gridloop.config import Settings
from gridloop.kafka import BatchPipeline, ensure_topics
from gridloop.kafka.replay import replay
from gridloop.mongo import connect, database
from gridloop.runtime import infrastructure, ops_app, serve
from gridloop.topology import PROJECTIONS
from schemas.envelope import Envelope
from services.projections.audit import audit_record
from services.projections.store import DUPLICATE_KEY, CaseStore

GROUP, TOPICS = PROJECTIONS.consumer_group, PROJECTIONS.topics


async def run(settings: Settings) -> None:
    async with infrastructure(settings, GROUP) as infra:
        store, trail = CaseStore(infra.db), AuditTrail(infra.db)
        await store.create_indexes()
        await trail.create_indexes()

        async def project(env: Envelope) -> Sequence[Envelope]:
            await store.apply(env)
            await audit(trail, env)
            return ()

        pipeline = BatchPipeline(
            GROUP,
            TOPICS,
            project,  # the fallback, record by record, for a poll that fails as a whole
            partial(project_many, store, trail),
            infra.producer,
            settings.kafka_bootstrap_servers,
            settings.kafka_session_timeout_ms,
        )
        app = ops_app("gridloop projections")
        await serve(app, settings.host, settings.projections_port, [pipeline.run])


log = logging.getLogger(__name__)


async def project_many(store: CaseStore, trail: AuditTrail, envs: Sequence[Envelope]) -> None:
    """Every envelope on its case, then its action in the audit trail (once, by event id)."""
    await store.apply_many(envs)
    records = [r for env in envs if (r := audit_record(env)) is not None]
    if not records:
        return
    try:
        await trail.records.insert_many(records, ordered=False)
    except BulkWriteError as exc:
        # A replayed event's record is kept already: the others went in (unordered).
        if any(e["code"] != DUPLICATE_KEY for e in exc.details["writeErrors"]):
            raise


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
        namespace=settings.namespace,
    )
    client = connect(settings)
    try:
        store, trail = CaseStore(database(client, settings)), AuditTrail(database(client, settings))
        await store.cases.drop()
        await store.create_indexes()
        project = partial(project_many, store, trail)
        return await replay(settings.kafka_bootstrap_servers, project, settings.namespace)
    finally:
        await client.close()
