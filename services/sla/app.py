"""The faust-streaming application of the SLA engine: the adapter between faust and the
engine (`services.sla.engine`), whose rules are the core's (`services.sla.core`).

- `clocks`: a table keyed (and partitioned) by case id, holding each case's stage clocks
  (`services.sla.core.CaseClocks`, compact JSON), recovered from its changelog on restart.
- `track`: an agent reading every lifecycle topic (reports, verifications, dispatches,
  completions, closures) into the table; a record it cannot read is dead-lettered the way
  every consumer does it (`gridloop.kafka.deadletter`).
- `scan`: a timer that sends the SLA events fallen due to `sla` (`Engine.scan`).
- `measure_lag`, `/metrics`, `/healthz`: what every service exports.
- A stop, and a rebalance until the new assignment, let the timer's tick in flight finish
  and flush its marks (`SlaApp`): the partitions' next owner, or this worker after a
  restart, recovers them and repeats no SLA event. Only a crash may (with the event's id).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP
from faust.types.transports import TransportT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gridloop import tracing
from gridloop.citypack import load_city_pack
from gridloop.citypack.sla import SlaPolicy
from gridloop.commands.mongo import MongoHeads
from gridloop.config import Settings
from gridloop.kafka.deadletter import DeadLetters
from gridloop.kafka.metrics import CONSUMED, LAG, consuming
from gridloop.kafka.topics import MIN_INSYNC
from gridloop.mongo import connect, database
from gridloop.topology import SLA_ENGINE, named
from schemas import clock
from schemas.envelope import Envelope, EnvelopeError, Headers, decode, encode
from schemas.events import SlaEvent
from schemas.topics import DISPATCHES
from services.sla import metrics
from services.sla.consumer import HeadFirstConsumer, SlaTransport
from services.sla.engine import Engine
from services.sla.recovery import CaseTables
from services.sla.table import CaseTable

log = logging.getLogger(__name__)
SOURCE = "/gridloop/sla"
SOURCES = SLA_ENGINE.consumes  # every lifecycle topic but `sla` (gridloop/topology.py)
GROUP = SLA_ENGINE.consumer_group  # the faust app id (in the namespace): its consumer group
DLQ_GROUP = "sla"  # what its dead letters' `dlq_group` header says
LAG_SECONDS = 5.0  # how often `gridloop_consumer_lag` is measured
FLUSH_SECONDS = 30.0  # at most this long for a stop to write the last tick's marks


@dataclass(frozen=True)
class Names:
    """The app's group and topics in the system's namespace (`gridloop.topology`): the app
    id prefixes faust's own topics (the changelog, the assignor's) too."""

    group: str
    sources: list[str]
    sla: str
    partitioned_like: str  # a source whose partitions the table shares

    @classmethod
    def of(cls, namespace: str) -> Names:
        (sla,) = SLA_ENGINE.produces
        return cls(
            named(namespace, GROUP),
            [named(namespace, t.name) for t in SOURCES],
            named(namespace, sla.name),
            named(namespace, DISPATCHES.name),
        )


class SlaApp(faust.App):
    """faust's app, holding the engine's timer first: faust stops the consumer and the
    tables (or hands the partitions over) while the timer may be between an acknowledged
    send and its mark; a mark lost that way sent the event again after the restart
    (bench_sla counted 499)."""

    sla_engine: Engine | None = None

    def _new_transport(self) -> TransportT:
        return SlaTransport(self.conf.broker_consumer, self)  # its consumer: `consumer.py`

    async def on_stop(self) -> None:
        await self.hold_engine()
        await super().on_stop()

    async def hold_engine(self) -> None:
        if self.sla_engine is not None:
            await self.sla_engine.hold()
            await self._flush_marks()

    async def _flush_marks(self) -> None:
        """Table writes wait in faust's producer buffer, whose `flush` gives up after 0.1 s
        without a send; then aiokafka's flush waits for their acknowledgement."""
        if self._producer is None:
            return
        buffer, loop = self._producer.buffer, asyncio.get_running_loop()
        give_up = loop.time() + FLUSH_SECONDS
        while buffer.size and loop.time() < give_up:
            await buffer.flush()
        await self._producer.flush()


def create_app(settings: Settings, policy: SlaPolicy | None = None) -> SlaApp:
    names = Names.of(settings.namespace)
    app = _faust_app(settings, names.group)
    clocks = _clocks_table(app, settings)

    async def send(event: SlaEvent) -> Awaitable[object]:
        # Straight to the producer, not through a faust topic's future-message machinery
        # (a sixth of the timer's CPU at 1,000 deadlines a second, bench_sla).
        key, value, headers = encode(Envelope(event, SOURCE))
        return await app.producer.send(names.sla, key, value, None, None, headers)

    def owned() -> set[int]:
        """The partitions this worker holds now (a case of another is not ours to mark)."""
        mine = app.consumer.assignment()
        return {tp.partition for tp in mine if tp.topic == names.partitioned_like}

    policy = _policy(settings) if policy is None else policy
    heads = MongoHeads(database(connect(settings), settings))
    engine = Engine(policy, clocks, send, owned, heads.versions)
    app.sla_engine = engine

    @clocks.on_recover
    async def rebuild_index() -> None:
        engine.rebuild()  # synchronous: nothing writes the table meanwhile

    @app.on_partitions_revoked.connect
    async def hand_over(sender: Any, /, *_: Any, signal: Any, **__: Any) -> None:
        await app.hold_engine()  # before the partitions' next owner recovers the changelog

    @app.on_partitions_assigned.connect
    async def take_over(sender: Any, /, *_: Any, signal: Any, **__: Any) -> None:
        consumer = app.consumer
        assert isinstance(consumer, HeadFirstConsumer)  # `SlaTransport`'s
        await consumer.rewind_uncommitted(names.sources)
        engine.resume()  # from now on, `owned` skips a case of a partition gone elsewhere

    _track(app, engine, names)
    _scan(app, engine, settings.sla_tick_seconds)
    _measure_lag(app, names)
    _pages(app)
    return app


def _policy(settings: Settings) -> SlaPolicy:
    pack = load_city_pack(settings.city_pack)
    metrics.zero(pack.departments)
    return pack.sla


def _faust_app(settings: Settings, group: str) -> SlaApp:
    return SlaApp(
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


def _clocks_table(app: faust.App, settings: Settings) -> CaseTable:
    # Values are compact JSON text (`services.sla.core.to_text`): a str is what both a write
    # and a recovery give back (the changelog is JSON-encoded).
    clocks = CaseTable(
        app,
        name=SLA_ENGINE.tables[0],
        partitions=DISPATCHES.partitions,
        beacon=app.tables.beacon,
        extra_topic_configs={MIN_INSYNC: str(settings.kafka_min_insync_replicas)},
    )
    app.tables.add(clocks)
    return clocks


def _track(app: faust.App, engine: Engine, names: Names) -> None:
    async def send_raw(
        topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> object:
        return await app.producer.send_and_wait(topic, key, value, None, None, headers)

    dead_letters = DeadLetters(names.group, names.sources, send_raw, DLQ_GROUP)
    consuming(names.group, names.sources, handles=False)
    sources = app.topic(*names.sources, value_serializer="raw", key_serializer="raw")

    @app.agent(sources)
    async def track(stream: Any) -> None:
        async for event in stream.events():
            record = event.message  # as read: its bytes, headers, topic, partition, offset
            CONSUMED.labels(names.group, record.topic).inc()
            with tracing.handling(names.group, record.topic, record.headers):
                try:
                    env = decode(record.value, record.headers)
                except EnvelopeError as exc:
                    await dead_letters.send(record, exc)
                    continue
                engine.track(env)


def _scan(app: faust.App, engine: Engine, interval: float) -> None:
    @app.timer(interval=interval)  # type: ignore[untyped-decorator]
    async def scan() -> None:
        await engine.scan(clock.now())


def _measure_lag(app: faust.App, names: Names) -> None:
    watched = set(names.sources)

    @app.timer(interval=LAG_SECONDS)  # type: ignore[untyped-decorator]
    async def measure_lag() -> None:
        """`gridloop_consumer_lag` of the group: what it has still to read, per topic."""
        lag = dict.fromkeys(watched, 0)
        for tp in app.consumer.assignment():
            if tp.topic in watched:  # not the changelog: read on recovery, not consumed
                lag[tp.topic] += await _behind(app, tp)
        for topic, behind in lag.items():
            LAG.labels(names.group, topic).set(behind)


async def _behind(app: faust.App, tp: TP) -> int:
    """Records of `tp` not yet handed to the agent: after the last offset faust's monitor
    saw handed (`Monitor.tp_read_offsets`, documented in faust's sensors guide), or, when
    none was since the last rebalance, before the consumer's position."""
    high = app.consumer.highwater(tp)
    if high is None:
        return 0
    read = app.monitor.tp_read_offsets.get(tp)
    if read is None:
        try:
            read = (await app.consumer.position(tp) or 0) - 1
        except Exception as exc:  # a metric never stops the engine (e.g. mid-rebalance)
            log.debug("no position for %s: %r", tp, exc)
            return 0
    return max(high - read - 1, 0)


def _pages(app: faust.App) -> None:
    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # aiohttp refuses a charset inside content_type: give the whole header instead.
            return self.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})
