"""The faust-streaming application of the SLA engine.

- `clocks`: a table keyed (and partitioned) by case id, holding each case's stage clocks
  (`services.sla.core.CaseClocks`, compact JSON), recovered from its changelog on restart.
- `track`: reads every lifecycle topic (reports, verifications, dispatches, completions,
  closures) and moves the clocks.
- `scan`: a timer that pops from the due-time index only the cases whose next warning,
  breach or escalation has fallen due, and sends those events to `sla`.
- `record`: reads `sla` back and marks each event on its clock (a timer cannot write a
  table: writes need the partition of a consumed record). Until the mark is read back, a
  repeated event has the same deterministic id and every consumer drops it.

The due-time index (`services.sla.index`) lives in memory and is rebuilt from the table
after every recovery (start-up and rebalance), so a restart resumes where the table left off.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gridloop.citypack import load_city_pack
from gridloop.citypack.sla import SlaPolicy, load_sla_policy
from gridloop.config import Settings
from schemas.envelope import Envelope, EnvelopeError, decode, encode, event_id
from schemas.events import CaseHandled, SlaBreach, SlaEscalation, SlaEvent, SlaWarning, Stage
from schemas.topics import (
    CLOSURES,
    COMPLETIONS,
    DISPATCHES,
    REPORTS,
    SLA,
    VERIFICATIONS,
    dead_letter_topic,
)
from services.sla import metrics
from services.sla.core import CaseClocks, Change, apply, due_events, next_due, record
from services.sla.index import DueIndex

log = logging.getLogger(__name__)
SOURCE = "/gridloop/sla"
SOURCES = (REPORTS, VERIFICATIONS, DISPATCHES, COMPLETIONS, CLOSURES)
RESEND_SECONDS = 30.0  # an event sent but not read back yet is sent again after this
MAX_PER_TICK = 20_000  # the rest waits for the next tick (bounded latency of a tick)


def dumps(state: CaseClocks) -> str:
    return json.dumps(state.to_json(), separators=(",", ":"))


def loads(raw: str | None) -> CaseClocks | None:
    return CaseClocks.from_json(json.loads(raw)) if raw else None


class Engine:
    """The SLA engine's in-memory side: the due-time index, the open-clock counts and the
    events sent but not yet read back. Everything here can be rebuilt from the table."""

    def __init__(self, policy: SlaPolicy) -> None:
        self.policy = policy
        self.index = DueIndex()
        self.open = metrics.OpenClocks()
        self.sent: dict[str, float] = {}  # event id → monotonic time sent

    def stored(self, case_id: str, before: CaseClocks | None, after: CaseClocks) -> None:
        """Keep the index and gauges in step with a table write."""
        self.open.change(before, after)
        self.index.schedule(case_id, next_due(after, self.policy))
        metrics.DUE_INDEX.set(len(self.index))

    def rebuild(self, items: Any) -> None:
        self.index.clear()
        states = []
        for case_id, raw in items:
            state = loads(raw)
            if state is None:
                continue
            states.append(state)
            self.index.schedule(case_id, next_due(state, self.policy))
        self.open.reset(states)
        metrics.DUE_INDEX.set(len(self.index))
        log.info("due-time index rebuilt: %d cases, %d due later", len(states), len(self.index))

    def due(self, case_id: str, state: CaseClocks, now: datetime) -> list[SlaEvent]:
        """Events due for this case and not sent in the last RESEND_SECONDS; the case is
        scheduled again (its next due time, or a resend check)."""
        mono = time.monotonic()
        fresh = []
        for event in due_events(case_id, state, now, self.policy):
            key = event_id(event)
            if mono - self.sent.get(key, -RESEND_SECONDS) >= RESEND_SECONDS:
                self.sent[key] = mono
                fresh.append(event)
        upcoming = next_due(state, self.policy)
        if upcoming is not None and upcoming <= now:  # waiting for the read-back
            upcoming = datetime.fromtimestamp(now.timestamp() + RESEND_SECONDS, UTC)
        self.index.schedule(case_id, upcoming)
        return fresh

    def read_back(self, event: SlaEvent) -> None:
        self.sent.pop(event_id(event), None)


def observe(change: Change, trigger: Any) -> None:
    """Metrics of clocks done: time to handle (and every stage), on-time share, closure."""
    for closed in change.closed:
        clock = closed.clock
        done = clock.stage is not Stage.handle or isinstance(trigger, CaseHandled)
        if not done or clock.stage is Stage.explain:
            continue
        labels = (clock.department, clock.stage.value)
        metrics.STAGE_SECONDS.labels(*labels).observe(closed.used.total_seconds())
        if clock.limit.total_seconds() > 0:
            metrics.LIMIT_USED.labels(*labels).observe(closed.used / clock.limit)
    if change.closed_case is not None:
        metrics.CLOSE_SECONDS.observe(change.closed_case.total_seconds())


def count_sent(event: SlaEvent, now: datetime) -> None:
    if event.assumed_years:
        metrics.ASSUMED_CALENDAR.labels(event.stage.value).inc()
    if isinstance(event, SlaWarning):
        metrics.WARNINGS.labels(event.department, event.stage.value).inc()
    elif isinstance(event, SlaBreach):
        metrics.BREACHES.labels(event.department, event.stage.value).inc()
        metrics.DELAY.observe(max((now - event.deadline).total_seconds(), 0.0))
    elif isinstance(event, SlaEscalation):
        metrics.ESCALATIONS.labels(event.department, event.tier).inc()


def create_app(settings: Settings, policy: SlaPolicy | None = None) -> faust.App:
    if policy is None:
        policy = load_sla_policy(settings.city_pack, load_city_pack(settings.city_pack))
    engine = Engine(policy)
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
    # Values are compact JSON text: a str is what both a write and a recovery give back
    # (the changelog is JSON-encoded), and it is far smaller in memory than nested dicts.
    clocks = app.Table("clocks", partitions=DISPATCHES.partitions)
    sources = app.topic(*(t.name for t in SOURCES), value_serializer="raw", key_serializer="raw")
    sla = app.topic(SLA.name, value_serializer="raw", key_serializer="raw")
    app.sla_engine = engine  # type: ignore[attr-defined]  # for tests and benchmarks

    @clocks.on_recover
    async def rebuild_index() -> None:
        engine.rebuild(list(clocks.items()))

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
            case_id = env.data.case_id
            before = loads(clocks.get(case_id))
            change = apply(before, env.data, env.time, policy)
            if change is None:
                continue
            clocks[case_id] = dumps(change.state)
            engine.stored(case_id, before, change.state)
            observe(change, env.data)

    @app.agent(sla)
    async def read_back(stream: Any) -> None:
        async for env in envelopes(stream):
            if not isinstance(env.data, SlaEvent):
                continue
            engine.read_back(env.data)
            before = loads(clocks.get(env.data.case_id))
            if before is None:
                continue
            marked = record(before, env.data, policy)
            if marked is not None:
                clocks[env.data.case_id] = dumps(marked)
                engine.stored(env.data.case_id, before, marked)

    @app.timer(interval=settings.sla_tick_seconds)  # type: ignore[untyped-decorator]
    async def scan() -> None:
        now = datetime.now(UTC)
        for case_id in engine.index.pop_due(now, MAX_PER_TICK):
            state = loads(clocks.get(case_id))
            if state is None:
                continue  # closed, or its partition moved to another worker
            for event in engine.due(case_id, state, now):
                key, value, headers = encode(Envelope(event, SOURCE))
                await sla.send(key=key, value=value, headers=headers)
                count_sent(event, now)
        metrics.DUE_INDEX.set(len(engine.index))

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    return app
