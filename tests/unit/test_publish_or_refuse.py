"""Intake and the callback API refuse with 503 when Kafka does not acknowledge in time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gridloop.commands import kafka
from gridloop.commands.kafka import publish_or_refuse
from gridloop.errors import STATUS, refused_response
from gridloop.kafka import EventProducer
from gridloop.refusal import Refused, Why
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
    monkeypatch.setattr(kafka, "PUBLISH_TIMEOUT_SECONDS", 0.05)
    producer = Unreachable()
    with pytest.raises(Refused) as refused:
        await publish_or_refuse(producer, [])
    assert (refused.value.why, refused.value.loc) == (Why.unavailable, ("kafka",))
    assert STATUS[refused.value.why] == 503
    # The HTTP edge answers the refusal with 503 and tells the client when to come back.
    answered = refused_response(refused.value)
    assert answered.status_code == 503
    assert answered.headers["Retry-After"] == "5"
    # Giving up waiting does not cancel what was handed to the producer.
    await asyncio.wait_for(producer.finished.wait(), 2)
