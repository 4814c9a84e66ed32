"""The one producer: `acks=all`, and `publish` returns only when Kafka acknowledged all."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from gridloop import tracing
from gridloop.kafka.metrics import PRODUCED
from gridloop.topology import check_namespace, named
from schemas.envelope import Envelope, Headers, encode
from schemas.topics import topic_for


class EventProducer:
    """Publishes to each event's home topic in `namespace` (gridloop/topology.py); the
    pipelines that publish through it consume and dead-letter in the same namespace."""

    def __init__(
        self, bootstrap_servers: str, client_id: str = "gridloop", namespace: str = ""
    ) -> None:
        self.namespace = check_namespace(namespace)
        self._homes: dict[str, str] = {}  # event type → topic in the namespace
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
        """Send every envelope to its home topic and wait for all acknowledgements (each in
        a span of its own when tracing, whose context the record carries)."""
        pending, topics = [], Counter[str]()
        hashed: dict[bytes, int] = {}  # a case's events share its key: one murmur2 (≈ 4 µs)
        spans = []
        try:
            for env in envelopes:
                topic = self.topic_for(env.type)
                if tracing.on():
                    env, span = tracing.sending(env, topic)
                    spans.append(span)
                key, value, headers = encode(env)
                topics[topic] += 1
                partition = self._partition(topic, key, hashed)
                sent = await self._producer.send(topic, value, key, partition, headers=headers)
                pending.append(sent)
            await asyncio.gather(*pending)
        except BaseException as exc:
            tracing.sent(spans, exc)
            raise
        tracing.sent(spans)
        for topic, n in topics.items():
            PRODUCED.labels(topic).inc(n)

    def topic_for(self, ce_type: str) -> str:
        """The home topic of `ce_type` in this producer's namespace."""
        if (topic := self._homes.get(ce_type)) is None:
            topic = self._homes[ce_type] = named(self.namespace, topic_for(ce_type))
        return topic

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
