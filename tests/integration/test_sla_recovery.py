"""The SLA table's recovery reads each changelog partition to its true end, in bulk.

Written as one batch, twenty records end at offset 20; a recovery that stopped at the end
ListOffsets reports (the embedded broker answers with the last batch's base offset + 1)
would lose the clocks the last nineteen set. The bulk read stops at the end it is given.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.sla.recovery import fetched_ends, read_changelog
from tests.conftest import Servers


async def one_batch(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        batch = producer.create_batch()
        for i in range(count):
            assert batch.append(key=f"case-{i}".encode(), value=b"{}", timestamp=None)
        await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()


async def create(bootstrap: str, *topics: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    finally:
        await admin.close()


async def test_the_end_of_a_partition_is_after_its_last_batch(servers: Servers) -> None:
    written, empty = f"changelog-{uuid.uuid4().hex[:8]}", f"changelog-{uuid.uuid4().hex[:8]}"
    await create(servers.kafka, written, empty)
    await one_batch(servers.kafka, written, 20)
    consumer = AIOKafkaConsumer(bootstrap_servers=servers.kafka)
    await consumer.start()
    try:
        tps = [TopicPartition(written, 0), TopicPartition(empty, 0)]
        reported = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()

    ends = await fetched_ends(servers.kafka, reported)

    assert ends == {TopicPartition(written, 0): 20, TopicPartition(empty, 0): 0}


async def test_a_bulk_read_applies_each_partition_from_its_start_to_its_end(
    servers: Servers,
) -> None:
    topic = f"changelog-{uuid.uuid4().hex[:8]}"
    await create(servers.kafka, topic, partitions=2)
    await one_batch(servers.kafka, topic, 30)  # partition 0, offsets 0..29
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    applied: list[tuple[int, int, bytes]] = []

    def apply(tp: TopicPartition, records: list[Any]) -> None:
        applied.extend((tp.partition, r.offset, r.key) for r in records)

    read = await read_changelog(servers.kafka, {tp0: (5, 25), tp1: (0, 0)}, apply, patience=30.0)

    assert read == {tp0: 24}  # the last offset read; partition 1 had nothing to read
    assert applied == [(0, i, f"case-{i}".encode()) for i in range(5, 25)]


async def test_a_bulk_read_out_of_time_says_how_far_it_read(servers: Servers) -> None:
    topic = f"changelog-{uuid.uuid4().hex[:8]}"
    await create(servers.kafka, topic)
    await one_batch(servers.kafka, topic, 3)
    applied: list[int] = []

    def apply(tp: TopicPartition, records: list[Any]) -> None:
        applied.extend(r.offset for r in records)

    # An end that never comes (the broker said 10, it has 3): the read gives up in time.
    read = await read_changelog(servers.kafka, {TopicPartition(topic, 0): (0, 10)}, apply, 0.5)

    assert read == {TopicPartition(topic, 0): 2} and applied == [0, 1, 2]  # faust reads on
