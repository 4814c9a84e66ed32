"""The SLA table's recovery reads each changelog partition to its true end.

Written as one batch, twenty records end at offset 20; a recovery that stopped at the end
ListOffsets reports (the embedded broker answers with the last batch's base offset + 1)
would lose the clocks the last nineteen set.
"""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.sla.recovery import fetched_ends
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


async def test_the_end_of_a_partition_is_after_its_last_batch(servers: Servers) -> None:
    written, empty = f"changelog-{uuid.uuid4().hex[:8]}", f"changelog-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 1, 1) for t in (written, empty)])
    finally:
        await admin.close()
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
