"""A case's partition, as the SLA engine computes it to write its table outside a stream,
is the one Kafka clients give the case's records."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from schemas.topics import DISPATCHES, partition_of


@given(st.text(min_size=1, max_size=40))
def test_a_case_lands_where_the_producers_put_its_records(case_id: str) -> None:
    partitions = list(range(DISPATCHES.partitions))
    chosen = DefaultPartitioner()(case_id.encode(), partitions, partitions)
    assert partition_of(case_id, DISPATCHES.partitions) == chosen
