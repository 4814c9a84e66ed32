"""Create the registry's topics at start-up: the embedded broker does not auto-create."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.topics import TOPICS, Topic

log = logging.getLogger(__name__)


async def ensure_topics(
    bootstrap_servers: str, topics: Iterable[Topic] = TOPICS.values(), replication: int = 1
) -> list[str]:
    """Create the missing topics; return the names created. Safe to call from every service."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(t.name, t.partitions, replication, topic_configs=dict(t.configs))
            for t in missing
        ]
        # Another service may win the race: the topics are there either way.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(new)
        log.info("created topics %s", [t.name for t in missing])
        return [t.name for t in missing]
    finally:
        await admin.close()
