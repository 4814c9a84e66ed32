"""The one producer: `acks=all`, and `publish` returns only when Kafka acknowledged all."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from gridloop.kafka.metrics import PRODUCED
from schemas.envelope import Envelope, Headers, encode
from schemas.topics import topic_for


class EventProducer:
    def __init__(self, bootstrap_servers: str, client_id: str = "gridloop") -> None:
        # Idempotent and transactional producers need InitProducerId, which the embedded
        # broker lacks; duplicates are instead dropped by consumers (deterministic event ids).
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=False,
            linger_ms=2,
            # aiokafka waits 40 s for a hung broker connection; a shorter wait lets clients
            # reconnect soon after an outage (the fault suite saw 80 s recoveries).
            request_timeout_ms=10_000,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Send every envelope to its home topic and wait for all acknowledgements."""
        pending, topics = [], Counter[str]()
        hashed: dict[bytes, int] = {}  # a case's events share its key: one murmur2 (≈ 4 µs)
        for env in envelopes:
            key, value, headers = encode(env)
            topic = topic_for(env.type)
            topics[topic] += 1
            partition = self._partition(topic, key, hashed)
            sent = await self._producer.send(topic, value, key, partition, headers=headers)
            pending.append(sent)
        await asyncio.gather(*pending)
        for topic, n in topics.items():
            PRODUCED.labels(topic).inc(n)

    def _partition(self, topic: str, key: bytes, hashed: dict[bytes, int]) -> int | None:
        """The partition aiokafka's default partitioner would pick for `key`; None (let
        aiokafka wait for the topic's metadata and pick) before the topic is known."""
        partitions = self._producer.client.cluster.partitions_for_topic(topic)
        if not partitions:
            return None
        if (h := hashed.get(key)) is None:
            h = hashed[key] = murmur2(key) & 0x7FFFFFFF
        return h % len(partitions)

    async def send_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        """Send bytes as they are (dead letters), waiting for the acknowledgement."""
        await self._producer.send_and_wait(topic, value, key=key, headers=headers)
        PRODUCED.labels(topic).inc()
