"""Create the registry's topics at start-up: the embedded broker does not auto-create."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.topics import TOPICS, Topic

log = logging.getLogger(__name__)
MIN_INSYNC = "min.insync.replicas"


def topic_specs(
    topics: Iterable[Topic], replication: int = 1, min_insync_replicas: int = 1
) -> list[NewTopic]:
    """The creation requests for `topics`: `replication` copies of each partition, and an
    acks=all write succeeds once `min_insync_replicas` of them have it."""
    if not 1 <= min_insync_replicas <= replication:
        # More in-sync replicas than replicas would refuse every acks=all write.
        raise ValueError(
            f"min.insync.replicas {min_insync_replicas} must be between 1 and the"
            f" replication factor {replication}"
        )
    return [
        NewTopic(
            t.name,
            t.partitions,
            replication,
            topic_configs={**t.configs, MIN_INSYNC: str(min_insync_replicas)},
        )
        for t in topics
    ]


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[Topic] = TOPICS.values(),
    replication: int = 1,
    min_insync_replicas: int = 1,
) -> list[str]:
    """Create the missing topics; return the names created. Safe to call from every service."""
    specs = topic_specs(topics, replication, min_insync_replicas)
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
