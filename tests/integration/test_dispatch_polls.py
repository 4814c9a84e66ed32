"""The dispatch service's consumer dispatches a poll at once: one read of the heads of the
cases it files, their dispatches claimed and published, then the commit. A case with no head
yet (a case from before heads, adopted from its projection) holds the poll, which is
dispatched once it can be; a record that cannot be dispatched is dead-lettered alone,
record by record, and the others are dispatched."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.calendar import SHANGHAI
from gridloop.cases import fold
from gridloop.citypack import load_city_pack
from gridloop.commands import Head
from gridloop.commands.mongo import MongoHeads
from gridloop.commands.setup import command_path
from gridloop.config import DEMO_CITY_PACK
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.kafka.replay import replay
from gridloop.mongo import Document
from gridloop.topology import named
from schemas.envelope import Envelope, encode
from schemas.events import (
    Actor,
    CaseChecked,
    CaseDispatched,
    CaseFiled,
    CaseHandled,
    CaseReported,
    CaseReworked,
    Role,
    Stage,
)
from schemas.topics import Topic, dead_letter_topic
from services.dispatch.handlers import SOURCE, Dispatch
from services.dispatch.main import consumer
from services.projections.store import CaseStore
from tests.conftest import Servers, fresh_namespace
from tests.helpers import eventually, read_topic
from tests.samples import TIME

GRID = "110101001002001"
SUPERVISOR = Actor(role=Role.supervisor, id="SUP-1")


class CountingHeads(MongoHeads):
    """The real heads, counting their reads: `polls` the ids of each read of a poll's heads
    (one read for a poll; one for each record the record-by-record way)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        super().__init__(db)
        self.polls: list[list[str]] = []

    async def load_many(self, case_ids: Iterable[str]) -> dict[str, Head]:
        ids = list(case_ids)
        self.polls.append(ids)
        return await super().load_many(ids)


def reported(case_id: str, n: int) -> Envelope:
    event = CaseReported(
        case_id=case_id,
        version=1,
        actor=SUPERVISOR,
        channel="supervisor",
        class_code="0102",
        kind="event",
        point={"lon": 116.4025, "lat": 39.9205},
        grid_code=GRID,
        description="暴露垃圾",
    )
    return Envelope(event, "/tests", TIME + timedelta(seconds=n))


def filed(case_id: str, n: int, class_code: str = "0102") -> Envelope:
    event = CaseFiled(
        case_id=case_id,
        version=2,
        actor=SUPERVISOR,
        kind="event",
        class_code=class_code,
        grid_code=GRID,
    )
    return Envelope(event, "/tests", TIME + timedelta(seconds=n, milliseconds=1))


class World:
    def __init__(self, servers: Servers, producer: EventProducer) -> None:
        self.servers, self.producer = servers, producer
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
        db = self.client[f"test_{uuid.uuid4().hex[:12]}"]
        self.store = CaseStore(db)
        self.heads = CountingHeads(db)
        self.pack = load_city_pack(DEMO_CITY_PACK)
        path = command_path(db, producer, SOURCE)
        path.heads = self.heads
        self.dispatch = Dispatch(self.pack, path)
        self.topic = f"it-{uuid.uuid4().hex[:8]}"
        self.group = f"g-{self.topic}"
        # As the broker names them: the pipeline works in its producer's namespace.
        self.wire_topic = named(producer.namespace, self.topic)
        self.wire_group = named(producer.namespace, self.group)

    def case_ids(self, n: int) -> list[str]:
        return [f"C-{self.topic}-{i}" for i in range(n)]

    async def send(self, *envs: Envelope) -> None:
        for env in envs:
            key, value, headers = encode(env)
            await self.producer.send_raw(self.wire_topic, key, value, headers)

    async def project(self, *envs: Envelope) -> None:
        """Into the projection only: a case from before heads, adopted from it."""
        for env in envs:
            await self.store.apply(env)

    async def claim(self, *envs: Envelope) -> None:
        """The case's head, as the commands that published `envs` left it."""
        await self.heads.adopt(fold(envs))

    async def dispatched(self, case_ids: Sequence[str]) -> dict[str, list[CaseDispatched]]:
        """Every `case.dispatched` of `case_ids` in the log, read to its end."""
        found: dict[str, list[CaseDispatched]] = {c: [] for c in case_ids}

        async def collect(envs: Sequence[Envelope]) -> None:
            for env in envs:
                if isinstance(env.data, CaseDispatched) and env.subject in found:
                    found[env.subject].append(env.data)

        await replay(self.servers.kafka, collect, self.producer.namespace)
        return found

    async def committed(self, records: int) -> bool:
        """Whether the consumer committed `records` records of the test topic: it publishes a
        poll's dispatches (and dead letters) before it commits the poll."""
        probe = AIOKafkaConsumer(
            bootstrap_servers=self.servers.kafka,
            group_id=self.wire_group,
            enable_auto_commit=False,
        )
        await probe.start()
        try:
            return (await probe.committed(TopicPartition(self.wire_topic, 0)) or 0) >= records
        finally:
            await probe.stop()

    async def polls_read(self, at_least: int) -> bool:
        return len(self.heads.polls) >= at_least

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The dispatch consumer (as `services.dispatch.main` wires it) on the test topic;
        stopped on exit, after its last commit."""
        stop = asyncio.Event()
        pipeline = consumer(
            self.dispatch, self.producer, self.servers.kafka, 6000, self.group, [self.topic]
        )
        task = asyncio.create_task(pipeline.run(stop))
        try:
            yield
        finally:
            stop.set()
            await task

    async def run_until_committed(self, records: int) -> None:
        async with self.running():
            await eventually(lambda: self.committed(records), what=f"{records} records committed")


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[World]:
    namespace = fresh_namespace()  # the replay reads this world's dispatches alone
    await ensure_topics(servers.kafka, namespace=namespace)
    producer = EventProducer(servers.kafka, namespace=namespace)
    await producer.start()
    w = World(servers, producer)
    await ensure_topics(
        servers.kafka,
        [Topic(w.topic, "test", 1), Topic(dead_letter_topic(w.topic), "test", 1)],
        namespace=namespace,
    )
    try:
        yield w
    finally:
        await producer.stop()
        await w.client.close()


async def test_a_poll_of_filings_is_dispatched_with_one_read(world: World) -> None:
    cases = world.case_ids(4)
    reports = [reported(c, n) for n, c in enumerate(cases)]
    for n, c in enumerate(cases):
        await world.claim(reports[n], filed(c, n))
    await world.send(*reports, *[filed(c, n) for n, c in enumerate(cases)])
    await world.send(filed(cases[0], 0))  # a redelivered filing, in the same poll

    await world.run_until_committed(9)

    # The one poll's filings in one read (a case's second reaction waits its turn: the
    # redelivered filing reads its head again, and finds it dispatched already).
    assert world.heads.polls == [cases, [cases[0]]]
    dispatched = await world.dispatched(cases)
    for case_id in cases:
        [event] = dispatched[case_id]  # once, the redelivered filing too
        assert event.version == 3
        assert event.department in world.pack.departments


async def test_a_case_not_yet_projected_holds_the_poll_which_is_then_dispatched_once(
    world: World,
) -> None:
    early, late = world.case_ids(2)
    await world.claim(reported(early, 0), filed(early, 0))
    await world.send(filed(early, 0), filed(late, 1))

    async with world.running():
        # Read, `late` not found, read again: the poll is being retried.
        await eventually(lambda: world.polls_read(2), what="the poll retried")
        # `late` is a case from before heads: adopted once its projection shows it.
        await world.project(reported(late, 1), filed(late, 1))
        await eventually(lambda: world.committed(2), what="the poll committed")

    assert all(poll == [early, late] for poll in world.heads.polls[:2])  # the whole poll
    found = await world.dispatched([early, late])
    assert [len(found[early]), len(found[late])] == [1, 1]  # nothing published before the retry


async def test_a_filing_that_cannot_be_dispatched_is_dead_lettered_alone(world: World) -> None:
    first, poison, last = world.case_ids(3)
    for n, c in enumerate((first, poison, last)):
        await world.claim(reported(c, n), filed(c, n, "9999" if c == poison else "0102"))
    # A class the city pack does not know: no deadline can be reckoned (409 unknown_class).
    await world.send(filed(first, 0), filed(poison, 1, class_code="9999"), filed(last, 2))

    await world.run_until_committed(3)

    def one(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return len(records) >= 1

    dead = await read_topic(world.servers.kafka, dead_letter_topic(world.wire_topic), one)
    assert [r.key for r in dead] == [poison.encode()]
    assert dict(dead[0].headers)["dlq_error"] == b"Refused: the case has no known class"
    assert world.heads.polls[0] == [first, poison, last]  # the poll, tried at once first
    assert [first] in world.heads.polls[1:]  # then record by record
    dispatched = await world.dispatched([first, poison, last])
    assert [len(dispatched[c]) for c in (first, poison, last)] == [1, 0, 1]


async def test_the_handling_time_starts_at_the_dispatch_not_at_the_filing(world: World) -> None:
    """Issue 19: a filing of Saturday 1 March 2025 (and a rework of it) dispatched today.
    Reckoned from the filing, 4 office hours end at 14:30 on Monday 3 March 2025 (the
    department would find it overdue at once); from the dispatch, they are the class's 4
    office hours from the dispatch (decided a moment before its event's time, at which the
    SLA engine opens the handling clock)."""
    first, again = world.case_ids(2)
    water = Actor(role=Role.department, id="WATER/h")
    history = [
        reported(again, 0),
        filed(again, 0),
        Envelope(
            CaseDispatched(
                case_id=again,
                version=3,
                actor=SUPERVISOR,
                department="WATER",
                deadline=TIME + timedelta(hours=4),
                rule="test",
            ),
            "/tests",
            TIME,
        ),
        Envelope(
            CaseHandled(case_id=again, version=4, actor=water, department="WATER"), "/t", TIME
        ),
        Envelope(CaseChecked(case_id=again, version=5, actor=SUPERVISOR, passed=False), "/t", TIME),
        Envelope(CaseReworked(case_id=again, version=6, actor=SUPERVISOR), "/tests", TIME),
    ]
    await world.claim(reported(first, 1), filed(first, 1))
    await world.claim(*history)
    await world.send(filed(first, 1), history[-1])
    await world.run_until_committed(2)

    found: dict[str, Envelope] = {}

    async def collect(envs: Sequence[Envelope]) -> None:
        wanted = {(first, 3), (again, 7)}  # the filing's dispatch, the rework's
        for env in envs:
            if isinstance(env.data, CaseDispatched) and (env.subject, env.data.version) in wanted:
                found[env.subject] = env

    await replay(world.servers.kafka, collect, world.producer.namespace)
    from_filing = world.pack.sla.deadline(Stage.handle, "event", "0102", None, TIME)
    assert from_filing is not None
    assert from_filing.due == datetime(2025, 3, 3, 14, 30, tzinfo=SHANGHAI)
    for case_id, department in ((first, "SANITATION"), (again, "WATER")):
        env = found[case_id]
        assert isinstance(env.data, CaseDispatched) and env.data.department == department
        assert env.time > TIME + timedelta(days=365)  # dispatched today, not in 2025
        # Reckoned as the dispatch was decided, a moment before its event's time.
        policy, second = world.pack.sla, timedelta(seconds=1)
        earliest = policy.deadline(Stage.handle, "event", "0102", None, env.time - second)
        latest = policy.deadline(Stage.handle, "event", "0102", None, env.time)
        assert earliest is not None and latest is not None
        assert earliest.due <= env.data.deadline <= latest.due
