"""The faust-streaming application of the SLA engine.

- `clocks`: a table keyed (and partitioned) by case id, holding each case's stage clocks
  (`services.sla.core.CaseClocks`, compact JSON), recovered from its changelog on restart.
- `track`: reads every lifecycle topic (reports, verifications, dispatches, completions,
  closures) and moves the clocks.
- `scan`: a timer that pops from the due-time index only the cases whose next warning,
  breach or escalation has fallen due, sends those events to `sla`, and once Kafka has
  acknowledged them marks them on the case's clocks (the table's changelog). A crash
  between the two sends an event again after recovery, with the same deterministic id,
  which every consumer drops; marking only after the acknowledgement means none is lost.

The due-time index (`services.sla.index`) lives in memory and is rebuilt from the table
after every recovery (start-up and rebalance), so a restart resumes where the table left off.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gridloop.citypack import load_city_pack
from gridloop.citypack.sla import SlaPolicy
from gridloop.config import Settings
from gridloop.kafka.metrics import CONSUMED, DEAD_LETTERED, LAG
from gridloop.kafka.topics import MIN_INSYNC
from gridloop.topology import SLA_ENGINE, named
from schemas import clock
from schemas.envelope import Envelope, EnvelopeError, decode, encode
from schemas.events import CaseHandled, SlaBreach, SlaEscalation, SlaEvent, SlaWarning, Stage
from schemas.topics import DISPATCHES, dead_letter_topic, partition_of
from services.sla import metrics
from services.sla.core import CaseClocks, Change, apply, due_events, next_due, record
from services.sla.index import DueIndex
from services.sla.recovery import CaseTables
from services.sla.table import CaseTable

log = logging.getLogger(__name__)
SOURCE = "/gridloop/sla"
SOURCES = SLA_ENGINE.consumes  # every lifecycle topic but `sla` (gridloop/topology.py)
RETRY_SECONDS = 5.0  # a case whose events could not be sent is tried again after this
ROUNDS = 4  # per tick: a breach, then the escalations it opens (each after its breach)
MAX_PER_TICK = 20_000  # the rest waits for the next tick (bounded latency of a tick)
GROUP = SLA_ENGINE.consumer_group  # the faust app id (in the namespace): its consumer group
LAG_SECONDS = 5.0  # how often `gridloop_consumer_lag` is measured
# A case that reached one of these is done: its clocks are closed and it leaves the table
# (a tombstone on the changelog), so the table holds open cases only.
FINISHED = frozenset({"gridloop.case.closed", "gridloop.case.voided", "gridloop.case.merged"})


def dumps(state: CaseClocks) -> str:
    return json.dumps(state.to_json(), separators=(",", ":"))


def loads(raw: str | None) -> CaseClocks | None:
    return CaseClocks.from_json(json.loads(raw)) if raw else None


class Engine:
    """The SLA engine's in-memory side: the due-time index and the open-clock counts.
    Everything here can be rebuilt from the table."""

    def __init__(self, policy: SlaPolicy) -> None:
        self.policy = policy
        self.index = DueIndex()
        self.open = metrics.OpenClocks()

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

    def retry_later(self, case_id: str, now: datetime) -> None:
        """Look at a case again in RETRY_SECONDS (its events could not be sent, or nothing
        it says is due could be emitted yet): never a busy loop on one case."""
        self.index.schedule(case_id, now + timedelta(seconds=RETRY_SECONDS))

    def due_again(self, case_id: str, now: datetime) -> bool:
        """Whether a case just marked has more due now (the escalations its breach opens);
        if so it leaves the index, for the next round of this tick."""
        when = self.index.when(case_id)
        if when is None or when > now.timestamp():
            return False
        self.index.schedule(case_id, None)
        return True


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
    # The app id prefixes faust's own topics (the changelog, the assignor's), so the
    # namespace reaches those too.
    group, topic_of = named(settings.namespace, GROUP), partial(named, settings.namespace)
    app = faust.App(
        group,
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
    clocks = CaseTable(
        app,
        name=SLA_ENGINE.tables[0],
        partitions=DISPATCHES.partitions,
        beacon=app.tables.beacon,
        extra_topic_configs={MIN_INSYNC: str(settings.kafka_min_insync_replicas)},
    )
    app.tables.add(clocks)
    watched = [topic_of(t.name) for t in SOURCES]
    for topic in watched:
        DEAD_LETTERED.labels(group, topic)  # at 0, as gridloop.kafka.consumer does
    sources = app.topic(*watched, value_serializer="raw", key_serializer="raw")
    (sla_topic,) = SLA_ENGINE.produces
    sla = app.topic(topic_of(sla_topic.name), value_serializer="raw", key_serializer="raw")
    partitioned_like = topic_of(DISPATCHES.name)  # a source whose partitions the table shares

    def _record(event: SlaEvent) -> dict[str, Any]:
        key, value, headers = encode(Envelope(event, SOURCE))
        return {"key": key, "value": value, "headers": headers}

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
        DEAD_LETTERED.labels(group, event.message.topic).inc()

    async def envelopes(stream: Any) -> AsyncIterator[Envelope]:
        async for event in stream.events():
            CONSUMED.labels(group, event.message.topic).inc()
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

    def owned() -> set[int]:
        """The partitions this worker holds now (a case of another is not ours to mark)."""
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == partitioned_like}

    async def send_due(cases: list[str], now: datetime) -> list[tuple[str, list[SlaEvent]]]:
        """Send what is due for `cases`; the events Kafka acknowledged, by case."""
        mine, pending = owned(), []
        for case_id in cases:
            state = loads(clocks.get(case_id))
            if state is None or partition_of(case_id, DISPATCHES.partitions) not in mine:
                continue  # closed, or its partition moved to another worker
            events = due_events(case_id, state, now, policy)
            if not events:
                engine.retry_later(case_id, now)  # its next due time is not reached after all
                continue
            acks = [await sla.send(**_record(event)) for event in events]
            pending.append((case_id, events, acks))
        sent = []
        for case_id, events, acks in pending:
            outcomes = await asyncio.gather(*acks, return_exceptions=True)
            failed = [o for o in outcomes if isinstance(o, BaseException)]
            if failed:
                log.warning("SLA events of %s not acknowledged: %r", case_id, failed[0])
                engine.retry_later(case_id, now)
            acked = zip(events, outcomes, strict=True)
            sent.append((case_id, [e for e, o in acked if not isinstance(o, BaseException)]))
        return sent

    def mark(sent: list[tuple[str, list[SlaEvent]]], now: datetime) -> list[str]:
        """Mark acknowledged events on their clocks; the cases with more due now."""
        again = []
        for case_id, events in sent:
            before = loads(clocks.get(case_id))
            if before is None:
                continue
            after = before
            for event in events:
                after = record(after, event, policy) or after
                count_sent(event, now)
            if after is not before:
                clocks[case_id] = dumps(after)
                engine.stored(case_id, before, after)
            if engine.due_again(case_id, now):
                again.append(case_id)
        return again

    @app.timer(interval=settings.sla_tick_seconds)  # type: ignore[untyped-decorator]
    async def scan() -> None:
        now = clock.now()
        due = engine.index.pop_due(now, MAX_PER_TICK)
        for _ in range(ROUNDS):
            if not due:
                break
            due = mark(await send_due(due, now), now)
        for case_id in due:  # more rounds than a ladder has rungs: next tick
            engine.retry_later(case_id, now)
        metrics.DUE_INDEX.set(len(engine.index))

    @app.timer(interval=LAG_SECONDS)  # type: ignore[untyped-decorator]
    async def measure_lag() -> None:
        """`gridloop_consumer_lag` of the group: what it has still to read, per topic."""
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
            LAG.labels(group, topic).set(behind)

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
