"""The clocks table: keyed by case id, written by the stream (`track`) and by the timer
(`scan`, marking what Kafka acknowledged), recovered from its changelog.

faust only knows the partition of a write made while a stream record is being processed;
a timer's write has none. Outside a stream, a key's partition is its case's, as the
producers partitioned the case's records (murmur2), so the changelog record lands where
a recovery of that partition looks for it.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.streams import current_event

from schemas.topics import DISPATCHES, partition_of


def case_partition(key: Any) -> int:
    text = key.decode() if isinstance(key, bytes) else str(key)
    return partition_of(text, DISPATCHES.partitions)


class CaseTable(faust.Table[str, str]):
    def partition_for_key(self, key: Any) -> int | None:
        if current_event() is not None:
            return super().partition_for_key(key)
        return case_partition(key)
