"""Intake and the callback API refuse with 503 when Kafka does not acknowledge in time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gridloop import errors
from gridloop.errors import Rejected, publish_or_refuse
from gridloop.kafka import EventProducer
from schemas.envelope import Envelope


class Unreachable(EventProducer):
    """A producer whose broker never answers (paused, or a network partition)."""

    def __init__(self) -> None:
        self.finished = asyncio.Event()

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        await asyncio.sleep(0.3)
        self.finished.set()


async def test_an_unacknowledged_publish_is_refused_with_503_and_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(errors, "PUBLISH_TIMEOUT_SECONDS", 0.05)
    producer = Unreachable()
    with pytest.raises(Rejected) as refused:
        await publish_or_refuse(producer, [])
    assert refused.value.status == 503
    assert refused.value.headers == {"Retry-After": "5"}
    # Giving up waiting does not cancel what was handed to the producer.
    await asyncio.wait_for(producer.finished.wait(), 2)
