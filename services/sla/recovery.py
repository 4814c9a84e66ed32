"""Table recovery that reads every changelog partition to its true end.

faust recovers a table by reading its changelog up to the end offsets that ListOffsets
reports. The embedded broker (Tansu 0.6.0) answers ListOffsets with the base offset of a
partition's last batch + 1, so a recovery stops short of the rest of that batch: the last
table writes of a partition (a batch of changelog records written together) come back
missing, and the clocks they set are lost. A fetch answers with the true high watermark,
so we ask one: from the reported end − 1, which every broker has, one fetch per partition.
On Apache Kafka both answers agree and this changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.tables import TableManager
from faust.tables.recovery import Recovery

log = logging.getLogger(__name__)
PATIENCE_SECONDS = 10.0  # then recover to the reported ends, and say so


async def fetched_ends(bootstrap: str, reported: Mapping[TopicPartition, int]) -> dict[Any, int]:
    """The end offset of each partition by a fetch's high watermark (never below the
    reported end); the reported ends where the broker does not answer in time."""
    ends: dict[Any, int] = dict(reported)
    asked = {tp: end for tp, end in reported.items() if end > 0}
    if not asked:
        return ends
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(asked))
        for tp, end in asked.items():
            consumer.seek(tp, end - 1)
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
    finally:
        await consumer.stop()
    return ends


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

    def _bootstrap(self) -> str:
        return ",".join(f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker)


class CaseTables(TableManager):
    """faust's table manager with `TailRecovery` (set as the app's `TableManager`)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = TailRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
