"""A small running system for racing commands (tests/integration/test_command_races.py).

Three services as production runs them, each on an event loop in a thread of its own (a
process each in production), on the session's broker and a database of their own:

- intake, served over loopback HTTP;
- dispatch: its API over loopback HTTP and its consumer (auto-dispatch of filed and reworked
  cases), sharing one `Dispatch` as `services/dispatch/main.py` does;
- projections: every lifecycle topic into the `cases` collection and the audit trail, as
  `services/projections/main.py` runs it (commands decide on their cases' heads; the race
  test reads the log and `GET /cases/{id}`).

The world is a namespace of its own (`gridloop/topology.py`): its topics hold its records
alone, and its consumer groups read them from the start. Where a partition ends is taken
from a fetch's high watermark, not ListOffsets, which the embedded broker understates
(`services/sla/recovery.py`).

`settle` waits until both groups have consumed everything there is, and returns the
world's records, case by case, read with a plain consumer from where the world began.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.audit import AuditTrail
from gridloop.auth import CredentialStore, Role
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.kafka import BatchPipeline, EventProducer, ensure_topics
from gridloop.mongo import Document
from gridloop.topology import named
from schemas.envelope import Envelope, decode
from schemas.topics import LIFECYCLE_TOPICS, SLA
from services.dispatch import main as dispatch_main
from services.intake.api import follow_key
from services.projections.main import project_many
from services.projections.store import CaseStore
from tests.conftest import Servers, fresh_namespace
from tests.integration.live_apps import Loop, apps, serve_loopback

SESSION_MS = 6000
# The topics a case's lifecycle is written to (`sla` holds deadline facts, not transitions).
LOG_TOPICS = tuple(t.name for t in LIFECYCLE_TOPICS if t is not SLA)  # as the contract names them
SETTLE_SECONDS = 120.0
QUIET_SECONDS = 0.3


class HarnessError(AssertionError):
    """The world did not do what every run needs (a case never reached a state, the
    consumers never caught up): a broken test, not a finding about races."""


@dataclass(frozen=True)
class RaceWorld:
    urls: dict[str, str]  # service → base URL
    tokens: dict[str, str]  # holder (see `HOLDERS`, and every department code) → token
    pack: CityPack
    kafka: str
    groups: dict[str, tuple[str, ...]]  # the world's consumer groups → their topics (as named)
    start: dict[TopicPartition, int]  # where the world's log begins
    namespace: str
    points: Iterator[int] = field(default_factory=itertools.count)  # reports' places


# Who acts in the races: holder → (role, subject).
HOLDERS: dict[str, tuple[Role, str]] = {
    "supervisor": (Role.supervisor, "SUP-0001"),
    "supervisor-2": (Role.supervisor, "SUP-0002"),
    "centre": (Role.supervision_centre, "centre-1"),
    "command": (Role.command_centre, "cc-1"),
    "command-2": (Role.command_centre, "cc-2"),
    "lead": (Role.shift_lead, "cc-1"),  # approvals are the shift lead's (值班长)
    "lead-2": (Role.shift_lead, "cc-2"),
    "hotline": (Role.hotline, "hotline-1"),
    "hotline-2": (Role.hotline, "hotline-2"),
}


def write_pack(target: Path) -> Path:
    """The demo pack, where no report is a duplicate of another (`duplicate_radius_m` 0:
    only one at the very same point): a race's cases are many, in a small district."""
    shutil.copytree(DEMO_CITY_PACK, target)
    city: dict[str, Any] = yaml.safe_load((target / "city.yaml").read_text(encoding="utf-8"))
    for cls in city["classes"]:
        cls["duplicate_radius_m"] = 0
    (target / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), "utf-8")
    return target


@dataclass(frozen=True)
class _Site:
    """Where the world's services run: the servers, their database, pack and groups."""

    servers: Servers
    db_name: str
    pack: CityPack
    projections: str  # consumer group
    dispatch: str  # consumer group
    namespace: str

    def groups(self) -> dict[str, tuple[str, ...]]:
        lifecycle = tuple(t.name for t in LIFECYCLE_TOPICS)
        return {self.projections: lifecycle, self.dispatch: tuple(dispatch_main.TOPICS)}

    def named_groups(self) -> dict[str, tuple[str, ...]]:
        """The groups and their topics as the broker names them (in the namespace)."""
        return {
            named(self.namespace, group): tuple(named(self.namespace, t) for t in topics)
            for group, topics in self.groups().items()
        }


@contextlib.contextmanager
def running(servers: Servers, pack_dir: Path) -> Iterator[RaceWorld]:
    """The three services of the race, until the block ends."""
    suffix = uuid.uuid4().hex[:8]
    site = _Site(
        servers,
        f"races_{suffix}",
        load_city_pack(pack_dir),
        "projections",
        "dispatch",
        fresh_namespace("races"),
    )
    loops = {name: Loop() for name in ("intake", "dispatch", "projections")}
    stacks = {name: contextlib.AsyncExitStack() for name in loops}
    try:
        start = loops["intake"].run(_begin(servers.kafka, site.namespace))
        loops["projections"].run(_projections(site, stacks["projections"]))
        urls = {
            "dispatch": loops["dispatch"].run(_dispatch(site, stacks["dispatch"])),
            "intake": loops["intake"].run(_intake(site, stacks["intake"])),
        }
        tokens = loops["intake"].run(_tokens(site, stacks["intake"]))
        groups = site.named_groups()
        yield RaceWorld(urls, tokens, site.pack, servers.kafka, groups, start, site.namespace)
    finally:
        for name, loop in loops.items():
            with contextlib.suppress(Exception):
                loop.run(stacks[name].aclose())
            loop.close()


async def _connect(
    site: _Site, stack: contextlib.AsyncExitStack
) -> tuple[AsyncDatabase[Document], EventProducer]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(site.servers.mongodb, tz_aware=True)
    stack.push_async_callback(mongo.close)
    producer = EventProducer(site.servers.kafka, namespace=site.namespace)
    await producer.start()
    stack.push_async_callback(producer.stop)
    return mongo[site.db_name], producer


async def _intake(site: _Site, stack: contextlib.AsyncExitStack) -> str:
    db, producer = await _connect(site, stack)
    app = apps(db, producer, await follow_key(db), site.pack)["intake"]
    return await serve_loopback(app, stack)


async def _dispatch(site: _Site, stack: contextlib.AsyncExitStack) -> str:
    """Dispatch's API and its consumer, on one `Dispatch` (as its bootstrap runs them)."""
    db, producer = await _connect(site, stack)
    app = apps(db, producer, b"", site.pack)["dispatch"]
    topics = site.groups()[site.dispatch]
    kafka = site.servers.kafka
    dispatch = app.state.dispatch
    consumer = dispatch_main.consumer(dispatch, producer, kafka, SESSION_MS, site.dispatch, topics)
    _in_background(consumer, stack)
    return await serve_loopback(app, stack)


async def _projections(site: _Site, stack: contextlib.AsyncExitStack) -> None:
    """The projections service's pipeline (`services/projections/main.py`)."""
    db, producer = await _connect(site, stack)
    store, trail = CaseStore(db), AuditTrail(db)
    await store.create_indexes()
    await trail.create_indexes()
    batch = partial(project_many, store, trail)

    async def one(env: Envelope) -> Sequence[Envelope]:
        await batch([env])  # record by record: a poll of one
        return ()

    topics, kafka = site.groups()[site.projections], site.servers.kafka
    pipeline = BatchPipeline(site.projections, topics, one, batch, producer, kafka, SESSION_MS)
    _in_background(pipeline, stack)


def _in_background(pipeline: BatchPipeline, stack: contextlib.AsyncExitStack) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))

    async def halt() -> None:
        stop.set()
        await task

    stack.push_async_callback(halt)


async def _tokens(site: _Site, stack: contextlib.AsyncExitStack) -> dict[str, str]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(site.servers.mongodb, tz_aware=True)
    stack.push_async_callback(mongo.close)
    credentials = CredentialStore(mongo[site.db_name])
    holders = HOLDERS | {code: (Role.department, code) for code in site.pack.departments}
    return {
        name: await credentials.issue(role, subject) for name, (role, subject) in holders.items()
    }


# --- the log ---------------------------------------------------------------------------------


def _partitions(topics: Sequence[str], namespace: str) -> list[TopicPartition]:
    """The partitions of `topics` (named in `namespace`)."""
    by_name = {named(namespace, t.name): t for t in LIFECYCLE_TOPICS}
    return [TopicPartition(t, p) for t in topics for p in range(by_name[t].partitions)]


async def _begin(kafka: str, namespace: str) -> dict[TopicPartition, int]:
    """The world's topics, created empty: its log begins at 0 everywhere."""
    await ensure_topics(kafka, namespace=namespace)
    lifecycle = [named(namespace, t.name) for t in LIFECYCLE_TOPICS]
    return dict.fromkeys(_partitions(lifecycle, namespace), 0)


class _Reader:
    """A consumer outside any group over `starts`' partitions, from those offsets, that
    knows each partition's true end (a fetch's high watermark)."""

    def __init__(self, kafka: str, starts: Mapping[TopicPartition, int]) -> None:
        self.starts = dict(starts)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            max_partition_fetch_bytes=8 * 2**20,
        )

    async def __aenter__(self) -> _Reader:
        await self.consumer.start()
        self.consumer.assign(list(self.starts))
        for tp, offset in self.starts.items():
            self.consumer.seek(tp, offset)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def seek_to_ends(self) -> None:
        """To the reported ends less one (every broker has them), so the next reads learn
        the true ends without reading the whole log."""
        reported = await self.consumer.end_offsets(list(self.starts))
        for tp, end in reported.items():
            self.consumer.seek(tp, max(end - 1, 0))

    async def read(self) -> list[Any]:
        """Every record up to each partition's end as a fetch reports it."""
        records: list[Any] = []
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            fetched = await self.consumer.getmany(timeout_ms=100, max_records=50_000)
            records.extend(r for rs in fetched.values() for r in rs)
            if await self._at_ends():
                return records
            if time.monotonic() > deadline:
                raise HarnessError("the log could not be read to its end")

    async def positions(self) -> dict[TopicPartition, int]:
        return {tp: await self.consumer.position(tp) for tp in self.starts}

    async def _at_ends(self) -> bool:
        for tp in self.starts:
            high = self.consumer.highwater(tp)
            if high is None or await self.consumer.position(tp) < high:
                return False
        return True


async def _caught_up(world: RaceWorld, ends: Mapping[TopicPartition, int]) -> bool:
    """Whether every group of the world has committed `ends` of the topics it reads."""
    for group, topics in world.groups.items():
        consumer = AIOKafkaConsumer(
            bootstrap_servers=world.kafka, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            for tp in _partitions(topics, world.namespace):
                if (await consumer.committed(tp) or 0) < ends[tp]:
                    return False
        finally:
            await consumer.stop()
    return True


async def settle(world: RaceWorld, case_ids: set[str]) -> dict[str, list[Envelope]]:
    """Once the world's groups have consumed every record there is (their reactions too)
    and the log stayed as it was for `QUIET_SECONDS` (whatever publishes after the answers,
    as an outbox would, has time to): the records of `case_ids`, case by case, in the order
    the log holds them."""
    records: list[Any] = []
    deadline = time.monotonic() + SETTLE_SECONDS
    async with _Reader(world.kafka, world.start) as reader:
        records += await reader.read()
        ends, quiet = await reader.positions(), False
        while True:
            caught_up = await _caught_up(world, ends)
            await asyncio.sleep(QUIET_SECONDS if caught_up else 0.1)
            records += await reader.read()
            now = await reader.positions()
            if caught_up and now == ends and quiet:
                break
            quiet = caught_up and now == ends
            if time.monotonic() > deadline:
                raise HarnessError(f"the consumers did not catch up in {SETTLE_SECONDS:.0f} s")
            ends = now
    logs: dict[str, list[Envelope]] = {}
    for record in records:
        topic = record.topic.removeprefix(f"{world.namespace}.")
        if topic in LOG_TOPICS and (case_id := record.key.decode()) in case_ids:
            logs.setdefault(case_id, []).append(decode(record.value, record.headers))
    return logs
