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
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gridloop import clock
from gridloop.citypack import load_city_pack
from gridloop.citypack.sla import SlaPolicy
from gridloop.config import Settings
from gridloop.kafka.metrics import CONSUMED, DEAD_LETTERED, LAG
from gridloop.kafka.topics import MIN_INSYNC
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
from services.sla.recovery import CaseTables

log = logging.getLogger(__name__)
SOURCE = "/gridloop/sla"
SOURCES = (REPORTS, VERIFICATIONS, DISPATCHES, COMPLETIONS, CLOSURES)
RESEND_SECONDS = 30.0  # an event sent but not read back yet is sent again after this
MAX_PER_TICK = 20_000  # the rest waits for the next tick (bounded latency of a tick)
GROUP = "gridloop-sla"  # the faust app id, which is its consumer group
LAG_SECONDS = 5.0  # how often `gridloop_consumer_lag` is measured
# A case that reached one of these is done: its clocks are closed and it leaves the table
# (a tombstone on the changelog), so the table holds open cases only.
FINISHED = frozenset({"gridloop.case.closed", "gridloop.case.voided", "gridloop.case.merged"})


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

    def stored(self, case_id: str, before: CaseClocks | None, after: CaseClocks | None) -> None:
        """Keep the index and gauges in step with a table write (None: a deletion)."""
        self.open.change(before, after)
        self.index.schedule(case_id, None if after is None else next_due(after, self.policy))
        metrics.DUE_INDEX.set(len(self.index))

    def rebuild(self, items: Any) -> None:
        """One pass over the table, holding one decoded case at a time: a list of every
        decoded case (as before) cost ≈ 0.8 GiB of peak memory at 1,000,000 cases."""
        self.index.clear()
        cases = 0

        def states() -> Iterator[CaseClocks]:
            nonlocal cases
            for case_id, raw in items:
                state = loads(raw)
                if state is None:
                    continue
                cases += 1
                self.index.schedule(case_id, next_due(state, self.policy))
                yield state

        self.open.reset(states())
        metrics.DUE_INDEX.set(len(self.index))
        log.info("due-time index rebuilt: %d cases, %d due later", cases, len(self.index))

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
        pack = load_city_pack(settings.city_pack)
        policy = pack.sla
        metrics.zero(pack.departments)
    engine = Engine(policy)
    app = faust.App(
        GROUP,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store="memory://",  # recovered from the changelog topic on restart
        datadir=str(settings.data_dir / "sla"),
        processing_guarantee="at_least_once",  # the embedded broker has no transactions
        topic_partitions=DISPATCHES.partitions,
        table_standby_replicas=0,
        TableManager=CaseTables,  # recovers each changelog to its true end (recovery.py)
        web_port=settings.sla_port,
        web_host=settings.host,
        web_bind=settings.host,
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        topic_allow_declare=True,
        # The changelog and faust's own topics: replicated like the registry's (ensure_topics).
        topic_replication_factor=settings.kafka_replication_factor,
        # Every table write is a changelog record: a few ms of linger batches them into one
        # request instead of a request (and a syscall) each.
        producer_linger=0.005,
    )
    # Values are compact JSON text: a str is what both a write and a recovery give back
    # (the changelog is JSON-encoded), and it is far smaller in memory than nested dicts.
    clocks = app.Table(
        "clocks",
        partitions=DISPATCHES.partitions,
        extra_topic_configs={MIN_INSYNC: str(settings.kafka_min_insync_replicas)},
    )
    for topic in (*SOURCES, SLA):
        DEAD_LETTERED.labels(GROUP, topic.name)  # at 0, as gridloop.kafka.consumer does
    sources = app.topic(*(t.name for t in SOURCES), value_serializer="raw", key_serializer="raw")
    sla = app.topic(SLA.name, value_serializer="raw", key_serializer="raw")
    app.sla_engine = engine  # type: ignore[attr-defined]  # for tests and benchmarks

    @clocks.on_recover
    async def rebuild_index() -> None:
        engine.rebuild(clocks.items())  # synchronous: nothing writes the table meanwhile

    async def dead_letter(event: Any, exc: Exception) -> None:
        topic = app.topic(
            dead_letter_topic(event.message.topic), value_serializer="raw", key_serializer="raw"
        )
        headers = {**event.headers, "dlq_error": str(exc).encode(), "dlq_group": b"sla"}
        await topic.send(key=event.key, value=event.value, headers=headers)
        DEAD_LETTERED.labels(GROUP, event.message.topic).inc()

    async def envelopes(stream: Any) -> AsyncIterator[Envelope]:
        async for event in stream.events():
            CONSUMED.labels(GROUP, event.message.topic).inc()
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
            if env.data.ce_type in FINISHED and not change.state.clocks:
                if before is not None:
                    del clocks[case_id]  # a tombstone: the changelog forgets the case too
                engine.stored(case_id, before, None)
            else:
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
        now = clock.now()
        for case_id in engine.index.pop_due(now, MAX_PER_TICK):
            state = loads(clocks.get(case_id))
            if state is None:
                continue  # closed, or its partition moved to another worker
            for event in engine.due(case_id, state, now):
                key, value, headers = encode(Envelope(event, SOURCE))
                await sla.send(key=key, value=value, headers=headers)
                count_sent(event, now)
        metrics.DUE_INDEX.set(len(engine.index))

    @app.timer(interval=LAG_SECONDS)  # type: ignore[untyped-decorator]
    async def measure_lag() -> None:
        """`gridloop_consumer_lag` of the group: what it has still to read, per topic."""
        watched = {t.name for t in SOURCES} | {SLA.name}
        lag = dict.fromkeys(watched, 0)
        consumer: Any = app.consumer  # faust's, whose read offsets are not in its type
        for tp in consumer.assignment():
            if tp.topic not in watched:
                continue  # the changelog: read on recovery, not consumed
            high = consumer.highwater(tp)
            if high is None:
                continue
            read = consumer._read_offset.get(tp)  # the last offset handed to an agent
            if read is None:
                try:
                    read = (await consumer.position(tp) or 0) - 1
                except Exception as exc:  # a metric never stops the engine (e.g. mid-rebalance)
                    log.debug("no position for %s: %r", tp, exc)
                    continue
            lag[tp.topic] += max(high - read - 1, 0)
        for topic, behind in lag.items():
            LAG.labels(GROUP, topic).set(behind)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # aiohttp refuses a charset inside content_type: give the whole header instead.
            return self.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    return app
