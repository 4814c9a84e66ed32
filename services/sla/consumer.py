"""faust's aiokafka consumer, committing nothing of a partition whose head it has not
handled yet.

At a rebalance faust drops the records it fetched but did not hand to the agent, and seeks
each partition back to its commit (`services.sla.app` rewinds one without a commit to its
start). faust then commits the longest run of handled offsets from the head — but with no
commit yet it does not check where that run starts (`Consumer._new_offset` tests the
previous commit for truth, and None and 0 are false), so it committed past the dropped
records and they were never read: two SLA workers on a new system lost the first
dispatches of the partitions the first one kept (the fault suite's scale-out test).

It assumes a partition starts at offset 0: the case topics keep every record
(`retention.ms = -1`). A new group on a topic whose head was deleted would commit nothing
and read everything again at each start: correct, but slow.
"""

from __future__ import annotations

from faust.transport.drivers.aiokafka import Consumer, Transport
from faust.types import TP


class HeadFirstConsumer(Consumer):
    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        if not self._committed_offset.get(tp) and acked and min(acked) > 0:
            return None  # offset 0 not handled yet: nothing to commit (our topics start at 0)
        return super()._new_offset(tp)


class SlaTransport(Transport):
    Consumer = HeadFirstConsumer
