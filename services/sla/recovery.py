"""Table recovery that reads every changelog partition to its true end, in bulk.

1. The true end. faust recovers a table by reading its changelog up to the end offsets that
   ListOffsets reports. The embedded broker (Tansu 0.6.0) answers ListOffsets with the base
   offset of a partition's last batch + 1, so a recovery stops short of the rest of that
   batch: the last table writes of a partition (a batch of changelog records written
   together) come back missing, and the clocks they set are lost. A fetch answers with the
   true high watermark, so we ask one: from the reported end − 1, which every broker has,
   one fetch per partition. On Apache Kafka both answers agree and this changes nothing.
2. In bulk. faust hands each changelog record through its consumer, an asyncio queue and a
   `wait_for` to the store, ≈ 80 µs a record: 100 of the 126 s that recovering 1,000,000
   open cases took. Before faust reads, `preload` reads the changelog with a plain consumer
   in large fetches and writes the decoded records straight into the in-memory store, then
   tells faust it has read that far; faust reads whatever is left (nothing, or the rest if
   the preload ran out of time) its own way.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.tables import TableManager
from faust.tables.recovery import Recovery

from services.sla.table import ClockStore

log = logging.getLogger(__name__)
PATIENCE_SECONDS = 10.0  # then recover to the reported ends, and say so
# faust gives the step that builds offsets `broker_request_timeout` (90 s by default); the
# preload stops well inside it and leaves what it did not read to faust's own recovery.
PRELOAD_SECONDS = 60.0
FETCH_BYTES = 32 * 2**20  # a fetch of 32 MiB: ≈ 150,000 clocks per round trip
Apply = Callable[[TopicPartition, list[Any]], None]


@asynccontextmanager
async def reading(
    bootstrap: str, starts: Mapping[TopicPartition, int], **config: Any
) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer outside any group, assigned `starts`' partitions at those offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **config)
    await consumer.start()
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        yield consumer
    finally:
        await consumer.stop()


async def fetched_ends(bootstrap: str, reported: Mapping[TopicPartition, int]) -> dict[Any, int]:
    """The end offset of each partition by a fetch's high watermark (never below the
    reported end); the reported ends where the broker does not answer in time."""
    ends: dict[Any, int] = dict(reported)
    asked = {tp: end for tp, end in reported.items() if end > 0}
    if not asked:
        return ends
    async with reading(bootstrap, {tp: end - 1 for tp, end in asked.items()}) as consumer:
        deadline, known = time.monotonic() + PATIENCE_SECONDS, set[TopicPartition]()
        while len(known) < len(asked) and time.monotonic() < deadline:
            await consumer.getmany(*(set(asked) - known), timeout_ms=200, max_records=1)
            for tp in set(asked) - known:
                if (high := consumer.highwater(tp)) is not None:
                    ends[tp] = max(high, asked[tp])
                    known.add(tp)
        if len(known) < len(asked):
            log.warning(
                "no fetch answer for %s: recovering to the reported end", set(asked) - known
            )
    return ends


async def read_changelog(
    bootstrap: str, spans: Mapping[TopicPartition, tuple[int, int]], apply: Apply, patience: float
) -> dict[TopicPartition, int]:
    """Read each partition from its start to its end offset (exclusive), handing each
    fetched run of records to `apply`; the last offset read of each partition read into.
    Records at or past the end are left for later; so is what a first fetch and `patience`
    seconds did not bring."""
    todo = {tp: span for tp, span in spans.items() if span[0] < span[1]}
    read: dict[TopicPartition, int] = {}
    if not todo:
        return read
    starts = {tp: start for tp, (start, _) in todo.items()}
    fetch = {"fetch_max_bytes": FETCH_BYTES, "max_partition_fetch_bytes": FETCH_BYTES}
    async with reading(bootstrap, starts, **fetch) as consumer:
        deadline = time.monotonic() + patience
        while todo:
            fetched = await consumer.getmany(*todo, timeout_ms=200, max_records=100_000)
            for tp, records in fetched.items():
                end = todo[tp][1]
                if records and records[-1].offset >= end:
                    records = [r for r in records if r.offset < end]
                if records:
                    apply(tp, records)
                # The position, not the last record: offsets a compaction or a transaction
                # marker left empty count as read.
                read[tp] = min(await consumer.position(tp), end) - 1
                if read[tp] >= end - 1:
                    del todo[tp]
                    consumer.pause(tp)
            if time.monotonic() >= deadline:
                break
        if todo:
            log.warning("bulk recovery out of time: faust reads the rest of %s", set(todo))
    return read


class TailRecovery(Recovery):
    async def _build_highwaters(
        self, consumer: Any, tps: Any, destination: Counter[Any], title: str
    ) -> None:
        await super()._build_highwaters(consumer, tps, destination, title)
        # faust keeps "end − 1" (the last offset to read); back to ends and again after.
        reported = {
            TopicPartition(tp.topic, tp.partition): end + 1 for tp, end in destination.items()
        }
        ends = await fetched_ends(self._bootstrap(), reported)
        for tp in list(destination):
            true_end = ends[TopicPartition(tp.topic, tp.partition)]
            if true_end - 1 > destination[tp]:
                log.info(
                    "changelog %s: recovering to %d, not %d", tp, true_end, destination[tp] + 1
                )
                destination[tp] = true_end - 1

    async def _build_offsets(
        self, consumer: Any, tps: Any, destination: Counter[Any], title: str
    ) -> None:
        await super()._build_offsets(consumer, tps, destination, title)
        if title != "active":
            return
        spans, tables = {}, {}
        for tp in tps:
            table: Any = self.tp_to_table[tp]
            high = self.active_highwaters.get(tp)
            if not isinstance(table.data, ClockStore) or high is None:
                continue
            start = destination[tp] + 1 if destination[tp] is not None else 0
            key = TopicPartition(tp.topic, tp.partition)
            spans[key], tables[key] = (start, high + 1), table
        started, count = time.monotonic(), 0

        def apply(tp: TopicPartition, records: list[Any]) -> None:
            nonlocal count
            table: Any = tables[tp]
            serializers = self.app.serializers
            table.data.load(tp.partition, decoded(table, serializers, records))
            count += len(records)

        read = await read_changelog(self._bootstrap(), spans, apply, PRELOAD_SECONDS)
        for tp in tps:
            if (last := read.get(TopicPartition(tp.topic, tp.partition))) is not None:
                destination[tp] = last
        if count:
            log.info("bulk recovery: %d records in %.1f s", count, time.monotonic() - started)

    def _bootstrap(self) -> str:
        return ",".join(f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker)


def decoded(table: Any, serializers: Any, records: list[Any]) -> list[tuple[Any, Any]]:
    """(key, value) of changelog records, decoded as faust decodes them for this table."""
    key_type, key_codec = table.key_type, table.key_serializer
    value_type, value_codec = table.value_type, table.value_serializer
    return [
        (
            serializers.loads_key(key_type, r.key, serializer=key_codec),
            None
            if r.value is None
            else serializers.loads_value(value_type, r.value, serializer=value_codec),
        )
        for r in records
    ]


class CaseTables(TableManager):
    """faust's table manager with `TailRecovery` (set as the app's `TableManager`)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = TailRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
