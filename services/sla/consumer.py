"""faust's aiokafka consumer, reading a partition the group never committed from its head,
and committing nothing of it before the head is handled.

At a rebalance faust drops the records it fetched but did not hand to the agent, and seeks
each partition back to its commit; aiokafka's seek skips a partition without one (or at
0), so the dropped records were not read again (`rewind_uncommitted` seeks it to 0). faust
then commits the longest run of handled offsets from the head — but with no commit yet it
does not check where that run starts (`Consumer._new_offset` tests the previous commit for
truth, and None and 0 are false), so it committed past the dropped records and they were
never read (`_new_offset` here). Two SLA workers on a new system lost the first dispatches
of the partitions the first one kept that way (the fault suite's scale-out test); reading
them twice is harmless (the engine's `apply` keeps the newer).

It assumes a partition starts at offset 0: the case topics keep every record
(`retention.ms = -1`). A new group on a topic whose head was deleted would commit nothing
and read everything again at each start: correct, but slow.
"""

from __future__ import annotations

from collections.abc import Collection

from faust.transport.drivers.aiokafka import Consumer, Transport
from faust.types import TP


class HeadFirstConsumer(Consumer):
    async def rewind_uncommitted(self, topics: Collection[str]) -> None:
        """Read again from its head each partition of `topics` the group never committed
        (called once its partitions are assigned, after faust's seek to the commits)."""
        committed = await self.seek_to_committed()
        for tp, offset in committed.items():
            if tp.topic in topics and not offset:
                await self.seek(tp, 0)

    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        if not self._committed_offset.get(tp) and acked and min(acked) > 0:
            return None  # offset 0 not handled yet: nothing to commit (our topics start at 0)
        return super()._new_offset(tp)


class SlaTransport(Transport):
    Consumer = HeadFirstConsumer
