"""Create the topics at start-up: the embedded broker does not auto-create. Which topics is
the wiring's word (`gridloop.topology.created_topics`), their partitions and configs the
registry's (`schemas.topics`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from gridloop.topology import created_topics, named
from schemas.topics import LIFECYCLE_TOPICS, Topic

log = logging.getLogger(__name__)
MIN_INSYNC = "min.insync.replicas"


def lifecycle_partitions(namespace: str = "") -> list[TopicPartition]:
    """Every partition of the lifecycle topics of `namespace`: what a reader that follows
    or replays the whole log assigns itself (no consumer group)."""
    return [
        TopicPartition(named(namespace, t.name), p)
        for t in LIFECYCLE_TOPICS
        for p in range(t.partitions)
    ]


def topic_specs(
    topics: Iterable[Topic],
    replication: int = 1,
    min_insync_replicas: int = 1,
    namespace: str = "",
) -> list[NewTopic]:
    """The creation requests for `topics` in `namespace`: `replication` copies of each
    partition, and an acks=all write succeeds once `min_insync_replicas` of them have it."""
    if not 1 <= min_insync_replicas <= replication:
        # More in-sync replicas than replicas would refuse every acks=all write.
        raise ValueError(
            f"min.insync.replicas {min_insync_replicas} must be between 1 and the"
            f" replication factor {replication}"
        )
    return [
        NewTopic(
            named(namespace, t.name),
            t.partitions,
            replication,
            topic_configs={**t.configs, MIN_INSYNC: str(min_insync_replicas)},
        )
        for t in topics
    ]


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[Topic] | None = None,
    replication: int = 1,
    min_insync_replicas: int = 1,
    namespace: str = "",
) -> list[str]:
    """Create the missing topics (by default every one the services use) in `namespace`;
    return the names created. Safe to call from every service."""
    chosen = created_topics() if topics is None else topics
    specs = topic_specs(chosen, replication, min_insync_replicas, namespace)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        # Another service may win the race: the topics are there either way.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(missing)
        log.info("created topics %s", [t.name for t in missing])
        return [t.name for t in missing]
    finally:
        await admin.close()
