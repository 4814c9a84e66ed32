"""The clocks table's store takes decoded changelog records in bulk (a recovery's preload)
and forgets, as faust's own store does, the keys of partitions this worker no longer holds."""

from __future__ import annotations

import faust
from faust.types import TP

from services.sla.table import CaseTable, ClockStore


def store() -> ClockStore:
    app = faust.App("clock-store-test", store="memory://")
    table = CaseTable(app, name="clocks", partitions=2)
    assert isinstance(table.data, ClockStore)
    return table.data


def test_records_are_applied_in_order_and_a_tombstone_deletes() -> None:
    clocks = store()
    clocks.load(0, [("a", "1"), ("b", "2"), ("a", "3"), ("b", None), ("c", "4")])
    clocks.load(1, [("d", "5"), ("missing", None)])

    assert dict(clocks.data) == {"a": "3", "c": "4", "d": "5"}
    assert clocks._key_partition == {"a": 0, "c": 0, "d": 1}


async def test_keys_of_a_partition_no_longer_held_are_dropped() -> None:
    clocks = store()
    clocks.load(0, [("a", "1")])
    clocks.load(1, [("d", "5")])

    await clocks.on_recovery_completed({TP("clocks-changelog", 1)}, set())

    assert dict(clocks.data) == {"d": "5"}
