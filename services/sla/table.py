"""The clocks table: keyed by case id, written by the stream (`track`) and by the timer
(`scan`, marking what Kafka acknowledged), recovered from its changelog.

faust only knows the partition of a write made while a stream record is being processed;
a timer's write has none. Outside a stream, a key's partition is its case's, as the
producers partitioned the case's records (murmur2), so the changelog record lands where
a recovery of that partition looks for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust
from faust.stores.memory import Store as MemoryStore
from faust.streams import current_event
from faust.types import StoreT

from schemas.topics import DISPATCHES, partition_of


def case_partition(key: Any) -> int:
    text = key.decode() if isinstance(key, bytes) else str(key)
    return partition_of(text, DISPATCHES.partitions)


class ClockStore(MemoryStore[str, str]):
    """faust's in-memory store, which a bulk recovery (`services.sla.recovery`) can fill
    with decoded changelog records directly."""

    def load(self, partition: int, records: Iterable[tuple[Any, Any]]) -> None:
        """Apply changelog records (key, value) of one partition in order; a value of
        None is a tombstone."""
        data, where = self.data, self._key_partition
        for key, value in records:
            if value is None:
                data.pop(key, None)
                where.pop(key, None)
            else:
                data[key] = value
                where[key] = partition


class CaseTable(faust.Table[str, str]):
    def partition_for_key(self, key: Any) -> int | None:
        if current_event() is not None:
            return super().partition_for_key(key)
        return case_partition(key)

    def _new_store(self) -> StoreT[str, str]:
        store = self._store or self.app.conf.store
        if str(store) != "memory:":
            return super()._new_store()
        return ClockStore(
            store,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )
