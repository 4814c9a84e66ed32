"""Dead letters, written once for every consumer (the pipelines and the SLA engine's faust
agent): a record that can never be handled goes to `<topic>.dlq` as it was read, with
headers saying why, where it came from and who gave up on it, and is counted in
`gridloop_records_dead_lettered_total`. Replaying one is sending it back to `dlq_topic`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from gridloop import tracing
from gridloop.kafka.metrics import DEAD_LETTERED, export
from schemas.envelope import Headers
from schemas.topics import dead_letter_topic

log = logging.getLogger(__name__)

# Sends bytes as they are and returns once Kafka acknowledged them.
SendRaw = Callable[[str, bytes | None, bytes | None, Headers], Awaitable[object]]


class Record(Protocol):
    """A record as read, by aiokafka (`ConsumerRecord`) or faust (`event.message`)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


def reason_of(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:4000]


def dead_letter_headers(record: Record, reason: str, group: str) -> Headers:
    """The record's own headers, then why it was dead-lettered and whence."""
    return [
        *record.headers,
        ("dlq_error", reason.encode()),
        ("dlq_topic", record.topic.encode()),
        ("dlq_partition", str(record.partition).encode()),
        ("dlq_offset", str(record.offset).encode()),
        ("dlq_group", group.encode()),
    ]


class DeadLetters:
    """The dead-letter path of consumer group `group` reading `topics`.

    `dlq_group` is the name the `dlq_group` header gives (the group's, unless said): the SLA
    engine's group is its faust app id, and its dead letters have always said `sla`, which
    is what operators and the fault suite filter on."""

    def __init__(
        self, group: str, topics: Iterable[str], send: SendRaw, dlq_group: str | None = None
    ) -> None:
        self.group, self.dlq_group, self._send = group, dlq_group or group, send
        export(DEAD_LETTERED)
        for topic in topics:
            # At 0 from the start: a dead letter is then an increase Prometheus sees (a series
            # born at 1 has none, and the first poison record would raise no alert).
            DEAD_LETTERED.labels(group, topic)

    async def send(self, record: Record, exc: BaseException) -> None:
        reason = reason_of(exc)
        tracing.dead_lettered(exc)
        log.error(
            "%s: dead-lettering %s[%d]@%d: %s",
            self.group,
            record.topic,
            record.partition,
            record.offset,
            reason,
        )
        headers = dead_letter_headers(record, reason, self.dlq_group)
        await self._send(dead_letter_topic(record.topic), record.key, record.value, headers)
        DEAD_LETTERED.labels(self.group, record.topic).inc()
