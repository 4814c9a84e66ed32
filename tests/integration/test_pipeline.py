"""The consume → handle → produce → commit loop against a real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from aiokafka import ConsumerRecord

from gridloop.kafka import BatchPipeline, EventProducer, Pipeline, Poison, Retry, ensure_topics
from schemas.envelope import Envelope, encode
from schemas.events import CaseFiled, CaseReported
from schemas.topics import REPORTS, Topic, dead_letter_topic, partition_of
from tests.conftest import Servers
from tests.helpers import eventually, read_topic
from tests.samples import sample_of


@pytest.fixture
async def topic(servers: Servers) -> str:
    """A topic (and its dead-letter topic) of this test alone."""
    name = f"it-{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        servers.kafka, [Topic(name, "test", 2), Topic(dead_letter_topic(name), "test", 1)]
    )
    return name


@pytest.fixture
async def producer(servers: Servers) -> AsyncIterator[EventProducer]:
    p = EventProducer(servers.kafka)
    await p.start()
    yield p
    await p.stop()


def filed(case_id: str) -> Envelope:
    return Envelope(sample_of(CaseFiled, case_id=case_id), "/tests")


async def send(producer: EventProducer, topic: str, env: Envelope) -> None:
    key, value, headers = encode(env)
    await producer.send_raw(topic, key, value, headers)


class Behind:
    """A handler whose read model never has the `stuck` cases, and has the others."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, env: Envelope) -> Sequence[Envelope]:
        if env.data.case_id.startswith("stuck"):
            raise Retry(f"case {env.data.case_id} not projected yet")
        self.seen.append(env.data.case_id)
        return ()

    async def poll(self, envs: Sequence[Envelope]) -> None:
        """The whole poll or nothing, as dispatch's: any case missing retries the poll."""
        if any(env.data.case_id.startswith("stuck") for env in envs):
            raise Retry("a case of the poll not projected yet")
        self.seen.extend(env.data.case_id for env in envs)


async def test_a_record_the_read_model_never_catches_up_with_is_dead_lettered(
    servers: Servers, topic: str, producer: EventProducer
) -> None:
    for case_id in ("stuck-1", "good-1"):  # keys of one partition, in this order or not
        await send(producer, topic, filed(case_id))
    handler = Behind()
    stop = asyncio.Event()
    pipeline = BatchPipeline(
        "g-" + topic, [topic], handler, handler.poll, producer, servers.kafka, 6000, 0.5
    )
    task = asyncio.create_task(pipeline.run(stop))
    try:
        dead = await read_topic(servers.kafka, dead_letter_topic(topic), lambda r: len(r) >= 1)
        await eventually(lambda: _has(handler.seen, "good-1"), what="the next record handled")
    finally:
        stop.set()
        await task
    reason = dict(dead[0].headers)["dlq_error"].decode()
    assert dead[0].key == b"stuck-1"
    assert reason.startswith("Poison: Retry('case stuck-1 not projected yet'), still after")
    assert handler.seen == ["good-1"]


class Recorder:
    """A handler that records what it saw, refusing `poison` and failing `flaky` twice."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.flaky_failures = 0

    async def __call__(self, env: Envelope) -> Sequence[Envelope]:
        if env.data.case_id.startswith("poison"):
            raise Poison("this case can never be handled")
        if env.data.case_id.startswith("flaky") and self.flaky_failures < 2:
            self.flaky_failures += 1
            raise Retry("the read model lags")
        self.seen.append(env.data.case_id)
        return ()


async def test_poison_goes_to_the_dead_letter_topic_and_the_next_record_is_handled(
    servers: Servers, topic: str, producer: EventProducer
) -> None:
    await producer.send_raw(topic, b"bad-1", b"{not json", [("ce_type", b"gridloop.x")])
    await send(producer, topic, filed("poison-1"))
    await send(producer, topic, filed("good-1"))
    handler = Recorder()
    stop = asyncio.Event()
    pipeline = Pipeline("g-" + topic, [topic], handler, producer, servers.kafka, 6000)
    task = asyncio.create_task(pipeline.run(stop))
    try:
        await eventually(lambda: _has(handler.seen, "good-1"), what="good record handled")

        def two(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
            return len(records) >= 2

        dead = await read_topic(servers.kafka, dead_letter_topic(topic), two)
    finally:
        stop.set()
        await task
    reasons = {r.key: dict(r.headers)["dlq_error"].decode() for r in dead}
    assert set(reasons) == {b"bad-1", b"poison-1"}
    assert "missing header" in reasons[b"bad-1"]
    assert reasons[b"poison-1"] == "Poison: this case can never be handled"
    assert dict(dead[0].headers)["dlq_topic"] == topic.encode()
    assert handler.seen == ["good-1"]


async def test_transient_failures_are_retried_not_dead_lettered(
    servers: Servers, topic: str, producer: EventProducer
) -> None:
    await send(producer, topic, filed("flaky-1"))
    handler = Recorder()
    stop = asyncio.Event()
    pipeline = Pipeline("g-" + topic, [topic], handler, producer, servers.kafka, 6000)
    task = asyncio.create_task(pipeline.run(stop))
    try:
        await eventually(lambda: _has(handler.seen, "flaky-1"), what="flaky record handled")
    finally:
        stop.set()
        await task
    assert handler.flaky_failures == 2
    assert handler.seen == ["flaky-1"]


async def test_committed_records_are_not_handled_again_by_the_next_member(
    servers: Servers, topic: str, producer: EventProducer
) -> None:
    group = "g-" + topic
    await send(producer, topic, filed("first"))
    first = Recorder()
    stop = asyncio.Event()
    task = asyncio.create_task(
        Pipeline(group, [topic], first, producer, servers.kafka, 6000).run(stop)
    )
    await eventually(lambda: _has(first.seen, "first"), what="first record")
    stop.set()
    await task

    await send(producer, topic, filed("second"))
    second = Recorder()
    stop = asyncio.Event()
    task = asyncio.create_task(
        Pipeline(group, [topic], second, producer, servers.kafka, 6000).run(stop)
    )
    try:
        await eventually(lambda: _has(second.seen, "second"), what="second record")
    finally:
        stop.set()
        await task
    assert second.seen == ["second"]


async def _has(seen: list[str], case_id: str) -> bool:
    return case_id in seen


async def test_a_case_s_events_go_to_the_partition_its_key_gives(
    servers: Servers, producer: EventProducer
) -> None:
    """The producer picks a case's partition itself (one hash for all its events), as the
    default partitioner would: consumers and the SLA table rely on a case's partition."""
    await ensure_topics(servers.kafka)
    ids = [f"partition-{uuid.uuid4().hex}" for _ in range(16)]
    for case_id in ids:  # the first before the producer has the topic's metadata
        reported = Envelope(sample_of(CaseReported, case_id=case_id), "/tests")
        await producer.publish([reported, filed(case_id)])

    def ours(records: list[ConsumerRecord[bytes, bytes]]) -> list[ConsumerRecord[bytes, bytes]]:
        return [r for r in records if r.key is not None and r.key.decode() in ids]

    records = await read_topic(servers.kafka, REPORTS.name, lambda rs: len(ours(rs)) == 32)
    placed = {(r.key, r.partition) for r in ours(records) if r.key is not None}
    assert len(placed) == 16  # both events of a case on one partition
    assert len({p for _, p in placed}) > 1  # and the cases spread
    for key, partition in placed:
        assert partition == partition_of(key.decode(), REPORTS.partitions)
