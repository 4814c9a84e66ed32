"""The faust-streaming application: a `deadlines` table keyed and partitioned by case id,
fed by the `dispatches` and `completions` topics; a timer emits breaches to `sla`.

A timer cannot write a table (writes need the partition of a consumed record), so the
breach goes out first and the agent reading `sla` records it in the table; until then a
repeated breach has the same deterministic id and consumers drop it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from gridloop.config import Settings
from schemas.envelope import Envelope, EnvelopeError, decode, encode
from schemas.events import CaseEvent, SlaBreach
from schemas.topics import COMPLETIONS, DISPATCHES, SLA, dead_letter_topic
from services.sla.core import Deadline, apply, breach, mark_breached

log = logging.getLogger(__name__)
SOURCE = "/gridloop/sla"
BREACHES = Counter("gridloop_sla_breaches_total", "Deadlines passed unmet", ["department"])


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        "gridloop-sla",
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store="memory://",  # recovered from the changelog topic on restart
        datadir=str(settings.data_dir / "sla"),
        processing_guarantee="at_least_once",  # the embedded broker has no transactions
        topic_partitions=DISPATCHES.partitions,
        table_standby_replicas=0,
        web_port=settings.sla_port,
        web_host=settings.host,
        web_bind=settings.host,
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        topic_allow_declare=True,
    )
    deadlines = app.Table("deadlines", partitions=DISPATCHES.partitions)
    sources = app.topic(
        DISPATCHES.name, COMPLETIONS.name, value_serializer="raw", key_serializer="raw"
    )
    sla = app.topic(SLA.name, value_serializer="raw", key_serializer="raw")
    emitted: set[tuple[str, int]] = set()  # breaches sent but not yet read back

    async def dead_letter(event: Any, exc: Exception) -> None:
        topic = app.topic(
            dead_letter_topic(event.message.topic), value_serializer="raw", key_serializer="raw"
        )
        headers = {**event.headers, "dlq_error": str(exc).encode(), "dlq_group": b"sla"}
        await topic.send(key=event.key, value=event.value, headers=headers)

    async def envelopes(stream: Any) -> AsyncIterator[Envelope]:
        async for event in stream.events():
            try:
                yield decode(event.value, list(event.headers.items()))
            except EnvelopeError as exc:
                log.error("dead-lettering %s: %s", event.message.topic, exc)
                await dead_letter(event, exc)

    @app.agent(sources)
    async def track(stream: Any) -> None:
        async for env in envelopes(stream):
            if isinstance(env.data, CaseEvent):
                raw = deadlines.get(env.data.case_id)
                current = Deadline.from_json(raw) if raw else None
                updated = apply(current, env.data)
                if updated is not None:
                    deadlines[env.data.case_id] = updated.to_json()

    @app.agent(sla)
    async def record(stream: Any) -> None:
        async for env in envelopes(stream):
            raw = deadlines.get(env.data.case_id)
            if isinstance(env.data, SlaBreach) and raw:
                deadlines[env.data.case_id] = mark_breached(
                    Deadline.from_json(raw), env.data
                ).to_json()
                emitted.discard((env.data.case_id, env.data.case_version))

    @app.timer(interval=settings.sla_tick_seconds)  # type: ignore[untyped-decorator]
    async def scan() -> None:
        # TODO(issue 5): a due-time index, so that a tick touches only what is due.
        now = datetime.now(UTC)
        for case_id, raw in list(deadlines.items()):
            if not raw:
                continue
            event = breach(case_id, Deadline.from_json(raw), now)
            if event is None or (case_id, event.case_version) in emitted:
                continue
            key, value, headers = encode(Envelope(event, SOURCE))
            await sla.send(key=key, value=value, headers=headers)
            emitted.add((case_id, event.case_version))
            BREACHES.labels(event.department).inc()

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    return app
