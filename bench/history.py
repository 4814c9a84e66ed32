"""A city's history, loaded fast: stored cases for the growth bench (`bench.bench_growth`).

The cases are copies of templates. A template is a case of a simulated month
(`bench.report_month.Month`: reported, verified, filed, dispatched, handled, checked,
closed, with the SLA engine's warnings and breaches; this month's cut at now, so some are
still open), written by the services' own code into a scratch database — projected
(`CaseStore`), folded and scored (`ScoreStore`), its head adopted (`MongoHeads.adopt`), its
departments' webhooks queued (`Notify`, then marked delivered) — and encoded as the records
of its topics. Every document of the scratch database that names the case is the
template's; so a collection a store starts writing is copied without a change here.

A copy is the template's bytes with new identities — case id, event ids, webhook ids, case
number, and a point of the same grid (so its cell keys, grid and community stay true) —
each of the same length as the template's, so that a copy is a join of the template's
constant pieces with its new values (a few µs a case) and its documents and records are
cut at the template's offsets. Copies go to the database by `insert_many` of raw BSON and
to the topics in record batches, both at once; then every consumer group's offsets are
moved to the topics' ends, as if the services had read the history already.
"""

from __future__ import annotations

import asyncio
import random
import re
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.producer.message_accumulator import BatchBuilder
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench.report_month import Month
from bench.servers import NAMESPACE, topic
from gridloop.cases.reader import CaseReader, view_of
from gridloop.citypack import CityPack
from gridloop.commands.mongo import MongoHeads
from gridloop.lifecycle import OPEN_STATES
from gridloop.mongo import Document
from gridloop.nearby import keys_of
from gridloop.topology import WIRING, named
from schemas.envelope import Envelope, encode
from schemas.events import CaseEvent, CaseFiled, CaseReported, Point
from schemas.topics import TOPICS, partition_of, topic_for
from services.evaluation.report.model import Period
from services.evaluation.store import ScoreStore
from services.intake.reporting import case_number, local_day
from services.notify.service import Notify
from services.notify.store import DELIVERED, DeliveryStore
from services.projections.store import CaseStore

SCRATCH = "growth_templates"
POLL = 500  # events a poll, as the services apply them
CHUNK = 2_000  # cases copied, inserted and produced together
INSERT = 1_000  # documents an insert_many
POINTS = 4_096  # points drawn in each grid and cell, for its copies
PROGRESS = 100_000  # cases between two lines of progress
OPEN = {state.value for state in OPEN_STATES}
TEMPLATE_ID = re.compile(rb"T\d{9}")  # a template's case id (`_template_id`)
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
WEBHOOK = re.compile(rb"msg_[0-9a-f]{32}")


def _template_id(t: int) -> str:
    return f"T{t:09d}"


def copy_id(n: int) -> str:
    """The n-th stored case's id (as long as a template's: `_template_id`)."""
    return f"H{n:09d}"


# --- templates: cases written by the services' own code --------------------------------------


def _point(rng: random.Random, pack: CityPack, grid_code: str, near: list[str]) -> Point:
    """A point of the grid with the cell keys `near` (none: any), with six decimals and a
    last one that is not 0, so that every point has the same length as text."""
    w, s, e, n = pack.polygon(grid_code).bounds
    while True:
        lon, lat = rng.uniform(w, e), rng.uniform(s, n)
        lon = round(lon, 5) + rng.randrange(1, 10) * 1e-6
        lat = round(lat, 5) + rng.randrange(1, 10) * 1e-6
        lon, lat = float(f"{lon:.6f}"), float(f"{lat:.6f}")
        found = pack.locate(lon, lat)
        if found is None or found.code != grid_code or len(repr(lon)) != 10:
            continue
        if len(repr(lat)) == 9 and (not near or keys_of("event", "0", lon, lat) == near):
            return Point(lon=lon, lat=lat)


def _renamed(pack: CityPack, envs: list[Envelope], t: int, rng: random.Random) -> list[Envelope]:
    """A simulated case's events under the template's id, number (a 7-digit sequence) and
    a point of its grid (`_point`); their ids derived again."""
    case_id, found = _template_id(t), []
    for env in envs:
        change: dict[str, object] = {"case_id": case_id}
        data = env.data
        if isinstance(data, CaseReported):
            change["point"] = _point(rng, pack, data.grid_code, [])
        if isinstance(data, CaseFiled):
            day = local_day(pack, env.time)
            change["case_number"] = case_number(data.kind, data.class_code, day, 9_000_000 + t)
        found.append(Envelope(data.model_copy(update=change), env.source, env.time))
    return found


def simulated(
    pack: CityPack, now: datetime, per_month: int, months: int, this_month: int
) -> tuple[list[list[Envelope]], list[list[Envelope]]]:
    """The templates' events: `per_month` cases of each of the `months` months before this
    one, and `this_month` of this month up to `now` (those reported later left out)."""
    period = Period.parse(
        f"{now.astimezone(ZoneInfo(pack.city.timezone)):%Y-%m}", pack.city.timezone
    )
    rng, t = random.Random(20), 0
    past: list[list[Envelope]] = []
    month = period
    for m in range(months):
        month = month.previous()
        made = Month(pack, month, now, seed=2000 + m)
        for n in range(per_month):
            past.append(_renamed(pack, made.case(n + 1), t, rng))
            t += 1
    current: list[list[Envelope]] = []
    made = Month(pack, period, now, seed=2100)
    n = 0
    while len(current) < this_month:
        n += 1
        if envs := made.case(n):  # none: reported after now
            current.append(_renamed(pack, envs, t, rng))
            t += 1
    return past, current


async def write_templates(
    db: AsyncDatabase[Document], pack: CityPack, cases: list[list[Envelope]]
) -> None:
    """Each template written as the services write a case: projected, folded and scored
    (its marks cleared, as a history already scored), its head adopted, its departments'
    webhooks queued and delivered."""
    events = sorted((e for case in cases for e in case), key=lambda e: e.time)
    # No indexes in the scratch database: the documents are the same without them, and
    # SecantusDB writes each case's thirteen index entries again at every event (48 s for
    # 2,300 templates with them, 10 s without).
    projections, scores = CaseStore(db), ScoreStore(db, pack)
    for start in range(0, len(events), POLL):
        await projections.apply_many(events[start : start + POLL])
        await scores.apply_many(events[start : start + POLL])
    while await scores.recompute_dirty():
        pass
    heads = MongoHeads(db)
    async for doc in db["cases"].find({}):
        await heads.adopt(view_of(doc))
    notify = Notify(pack, CaseReader(db), DeliveryStore(db))
    for start in range(0, len(events), POLL):
        await notify.on_events(events[start : start + POLL])
    # As the deliverer leaves them once the department answered.
    done = {"status": DELIVERED, "attempts": 1, "delivered_at": datetime.now(UTC)}
    await db["deliveries"].update_many({}, {"$set": done})


# --- a template: its bytes, and where its identities lie ---------------------------------------


@dataclass(frozen=True)
class Record:
    """A record of a template, as offsets into its bytes."""

    topic: str
    partitions: int  # of the topic
    timestamp_ms: int
    key: tuple[int, int]
    value: tuple[int, int]
    headers: tuple[tuple[str, int, int], ...]


@dataclass
class Template:
    """One case's documents and records as one run of bytes, cut into constant pieces
    between the places its identities fill."""

    case_id: str
    grid_code: str
    near: list[str]  # its cell keys at the finest level: a copy's point keeps them
    state: str
    version: int  # the newest lifecycle version
    month: str
    pieces: list[bytes] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)  # the identity after each piece but the last
    identities: list[bytes] = field(default_factory=list)
    documents: list[tuple[str, int, int]] = field(default_factory=list)  # collection, start, end
    records: list[Record] = field(default_factory=list)

    def copy(self, n: int, point: Point) -> bytes:
        """The bytes of the n-th stored case: the template's, its identities replaced."""
        new = [_new(old, k, n, point) for k, old in enumerate(self.identities)]
        joined = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            joined += (new[slot], piece)
        return b"".join(joined)


_CASE, _NUMBER = 0, 1  # the first identities; then the point's, then event and webhook ids


def _new(old: bytes, k: int, n: int, point: Point) -> bytes:
    """The value of identity `k` (the template's `old`) in the n-th copy."""
    if k == _CASE:
        return copy_id(n).encode()
    if k == _NUMBER:
        return old[:-7] + f"{n % 10_000_000:07d}".encode()
    if k < 6:  # lon, lat as BSON doubles, lon, lat as JSON numbers
        value = (point.lon, point.lat)[k % 2]
        return struct.pack("<d", value) if k < 4 else repr(value).encode()
    if old.startswith(b"msg_"):
        return f"msg_{n:016x}{k:016x}".encode()
    return f"{n:08x}-{k:04x}-5000-8000-{k:012x}".encode()


def _identities(case_id: str, number: str, point: Point, run: bytes) -> list[bytes]:
    """What a copy changes: case id, number, point (as doubles and as text), then every
    event id and webhook id in the template's bytes."""
    fixed = [case_id.encode(), (number or "\0no number").encode()]
    fixed += [struct.pack("<d", point.lon), struct.pack("<d", point.lat)]
    fixed += [repr(point.lon).encode(), repr(point.lat).encode()]
    ids = dict.fromkeys(m.group() for pattern in (UUID, WEBHOOK) for m in pattern.finditer(run))
    return fixed + list(ids)


def _cut(template: Template, run: bytes) -> None:
    """The template's pieces and slots: every place one of its identities lies in `run`."""
    places = sorted(
        (at.start(), k, len(old))
        for k, old in enumerate(template.identities)
        for at in re.finditer(re.escape(old), run)
    )
    start = 0
    for at, k, length in places:
        if at < start:
            raise ValueError(f"{template.case_id}: identities overlap at byte {at}")
        template.pieces.append(run[start:at])
        template.slots.append(k)
        start = at + length
    template.pieces.append(run[start:])


class Run:
    """A template's bytes as they are gathered, and where each document or record lies."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, blob: bytes) -> tuple[int, int]:
        self.parts.append(blob)
        self.size += len(blob)
        return self.size - len(blob), self.size


def _record(run: Run, env: Envelope) -> Record:
    key, value, headers = encode(env)
    home = topic_for(env.type)
    return Record(
        topic(home),
        TOPICS[home].partitions,
        int(env.time.timestamp() * 1000),
        run.add(key),
        run.add(value),
        tuple((name, *run.add(raw)) for name, raw in headers),
    )


async def read_templates(
    db: AsyncDatabase[RawBSONDocument], cases: list[list[Envelope]], months: dict[str, str]
) -> list[Template]:
    """The templates as written in `db`: every document naming a template's case, in any
    collection, and its events as records."""
    docs: dict[str, list[tuple[str, bytes]]] = {}
    for name in sorted(await db.list_collection_names()):
        async for raw in db[name].find({}):
            if named_case := TEMPLATE_ID.search(raw.raw):
                docs.setdefault(named_case.group().decode(), []).append((name, bytes(raw.raw)))
    projected = {d["_id"]: d async for d in db["cases"].find({})}
    return [
        _template(envs, projected[c], docs[c], months[c])
        for envs in cases
        if (c := envs[0].data.case_id)
    ]


def _template(
    envs: list[Envelope], projected: Mapping[str, Any], docs: list[tuple[str, bytes]], month: str
) -> Template:
    reported = envs[0].data
    assert isinstance(reported, CaseReported)
    point, number = reported.point, projected.get("case_number", "")
    template = Template(
        case_id=reported.case_id,
        grid_code=reported.grid_code,
        near=keys_of("event", "0", point.lon, point.lat),
        state=projected["state"],
        version=max(e.data.version for e in envs if isinstance(e.data, CaseEvent)),
        month=month,
    )
    run = Run()
    template.documents = [(name, *run.add(raw)) for name, raw in docs]
    template.records = [_record(run, env) for env in envs]
    whole = b"".join(run.parts)
    template.identities = _identities(template.case_id, number, point, whole)
    _cut(template, whole)
    return template


async def templates(
    uri: str, pack: CityPack, now: datetime, shape: Shape
) -> tuple[list[Template], list[Template]]:
    """The past months' templates and this month's, written and read back in a scratch
    database of the server at `uri` (dropped after)."""
    past, current = simulated(pack, now, shape.per_month, shape.months, shape.templates_now)
    zone = ZoneInfo(pack.city.timezone)
    months = {c[0].data.case_id: f"{c[0].time.astimezone(zone):%Y-%m}" for c in (*past, *current)}
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
    raw: AsyncMongoClient[RawBSONDocument] = AsyncMongoClient(uri, document_class=RawBSONDocument)
    await client.drop_database(SCRATCH)
    try:
        await write_templates(client[SCRATCH], pack, [*past, *current])
        read = await read_templates(raw[SCRATCH], [*past, *current], months)
    finally:
        await client.drop_database(SCRATCH)
        await client.close()
        await raw.close()
    # The past months' ended cases alone: what grows with a city's history is its closed
    # cases, not its backlog (a few of a simulated month's are still open at its end).
    ended = [t for t in read[: len(past)] if t.state not in OPEN]
    return ended, read[len(past) :]


# --- the history: copies into the database and the topics -------------------------------------


@dataclass(frozen=True)
class Shape:
    """How the history lies: `this_month` cases this month (loaded first, the same at
    every size), the rest spread evenly over the `months` before; templates of each."""

    months: int = 12
    this_month: int = 3_000
    per_month: int = 100  # templates of each past month
    templates_now: int = 400  # templates of this month


@dataclass
class Loaded:
    """What one growth of the history wrote, and how long it took."""

    cases: int
    documents: dict[str, int]
    records: int
    seconds: float
    offsets_seconds: float

    @property
    def rate(self) -> float:
        return self.cases / self.seconds if self.seconds else 0.0


class History:
    """The stored cases of a system's database and topics, grown by copies of templates."""

    def __init__(
        self, pack: CityPack, past: list[Template], current: list[Template], shape: Shape
    ) -> None:
        self.pack, self.past, self.current, self.shape = pack, past, current, shape
        self.stored = 0
        self.rng = random.Random(7)
        self.points: dict[tuple[str, ...], list[Point]] = {}
        self.states: dict[str, int] = {}  # the stored cases' states, counted

    def template(self, n: int) -> Template:
        """This month's first (`Shape.this_month`), then the past months', in turn."""
        if n < self.shape.this_month:
            return self.current[n % len(self.current)]
        return self.past[(n - self.shape.this_month) % len(self.past)]

    def point(self, template: Template, n: int) -> Point:
        """A point of the template's grid and cell: one of a few thousand drawn once."""
        where = (template.grid_code, *template.near)
        if (pool := self.points.get(where)) is None:
            grid, near = template.grid_code, template.near
            pool = self.points[where] = [
                _point(self.rng, self.pack, grid, near) for _ in range(POINTS)
            ]
        return pool[n % len(pool)]

    def of_this_month(self, state: str, count: int, skip: int = 0) -> list[tuple[str, int]]:
        """`count` of this month's stored cases in `state` (after the first `skip`), with
        their newest versions."""
        found = []
        for n in range(min(self.stored, self.shape.this_month)):
            template = self.template(n)
            if template.state == state:
                found.append((copy_id(n), template.version))
        return found[skip : skip + count]

    async def grow(self, to: int, uri: str, database: str, kafka: str) -> Loaded:
        """Copies until `to` cases are stored, written as they are made (one chunk in
        flight while the next is made); then the consumer groups moved past them."""
        client: AsyncMongoClient[RawBSONDocument] = AsyncMongoClient(
            uri, document_class=RawBSONDocument
        )
        sender = await producer(kafka)
        writer = Writer(client[database], sender)
        started, first = time.perf_counter(), self.stored
        try:
            writing: asyncio.Task[None] | None = None
            while self.stored < to:
                count = min(CHUNK, to - self.stored)
                docs, batches = self._chunk(sender, self.stored, count, writer)
                if writing is not None:
                    await writing
                writing = asyncio.create_task(writer.write(docs, batches))
                self.stored += count
                if self.stored % PROGRESS < count:  # a long load says how it goes
                    made = self.stored - first
                    rate = made / (time.perf_counter() - started)
                    print(f"  … {self.stored:,} stored ({rate:,.0f}/s)", flush=True)
            if writing is not None:
                await writing
        finally:
            await sender.stop()
            await client.close()
        loaded = time.perf_counter()
        await move_groups_to_end(kafka)
        offsets = time.perf_counter() - loaded
        return Loaded(
            self.stored - first, writer.counted, writer.records, loaded - started, offsets
        )

    def _chunk(
        self, sender: AIOKafkaProducer, first: int, count: int, writer: Writer
    ) -> tuple[dict[str, list[RawBSONDocument]], list[Batch]]:
        """The documents and record batches of `count` copies from the `first`-th."""
        docs: dict[str, list[RawBSONDocument]] = {}
        batches = Batches(sender)
        for n in range(first, first + count):
            template = self.template(n)
            self.states[template.state] = self.states.get(template.state, 0) + 1
            blob = template.copy(n, self.point(template, n))
            for name, start, end in template.documents:
                docs.setdefault(name, []).append(RawBSONDocument(blob[start:end]))
                writer.counted[name] = writer.counted.get(name, 0) + 1
            for record in template.records:
                batches.append(record, blob, copy_id(n))
        writer.records += batches.count
        return docs, batches.done()


Batch = tuple[BatchBuilder, str, int]  # records of a topic's partition, sent together


class Batches:
    """Records in batches by topic and partition (the case id's, as the producers pick)."""

    def __init__(self, sender: AIOKafkaProducer) -> None:
        self.sender = sender
        self.open: dict[tuple[str, int], BatchBuilder] = {}
        self.full: list[Batch] = []
        self.count = 0

    def append(self, r: Record, blob: bytes, case_id: str) -> None:
        where = (r.topic, partition_of(case_id, r.partitions))
        fields = {
            "key": blob[r.key[0] : r.key[1]],
            "value": blob[r.value[0] : r.value[1]],
            "timestamp": r.timestamp_ms,
            "headers": [(name, blob[a:b]) for name, a, b in r.headers],
        }
        batch = self.open.get(where) or self.sender.create_batch()
        if batch.append(**fields) is None:  # full: sent, and a new one begun
            self.full.append((batch, *where))
            batch = self.sender.create_batch()
            batch.append(**fields)
        self.open[where] = batch
        self.count += 1

    def done(self) -> list[Batch]:
        return self.full + [(b, *where) for where, b in self.open.items()]


class Writer:
    """Copies into the database (`insert_many` by thousands, a collection at a time) and
    the topics (batches, all in flight), both at once."""

    def __init__(self, db: AsyncDatabase[RawBSONDocument], sender: AIOKafkaProducer) -> None:
        self.db, self.sender = db, sender
        self.counted: dict[str, int] = {}  # documents written, by collection
        self.records = 0

    async def write(self, docs: dict[str, list[RawBSONDocument]], batches: list[Batch]) -> None:
        await asyncio.gather(self._produce(batches), self._insert(docs))

    async def _insert(self, docs: dict[str, list[RawBSONDocument]]) -> None:
        # One collection at a time: the database is one Python process, and inserts into
        # several at once were slower (356 against 385 cases/s).
        for name, found in docs.items():
            for start in range(0, len(found), INSERT):
                await self.db[name].insert_many(found[start : start + INSERT], ordered=False)

    async def _produce(self, batches: list[Batch]) -> None:
        sent = [await self.sender.send_batch(b, t, partition=p) for b, t, p in batches]
        await asyncio.gather(*sent)


async def producer(kafka: str) -> AIOKafkaProducer:
    """A producer of large batches (the history's records are sent in batches made here)."""
    found = AIOKafkaProducer(
        bootstrap_servers=kafka,
        acks="all",
        enable_idempotence=False,  # the embedded broker cannot (docs: design § 5)
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    await found.start()
    return found


async def move_groups_to_end(kafka: str) -> None:
    """Commit every consumer group's offsets at the end of the topics it reads: the
    services start after the history, as if they had read it."""
    # All at once: each waits for the stopped members' sessions to expire (≈ 10 s).
    await asyncio.gather(
        *(
            _commit_ends(
                kafka,
                named(NAMESPACE, wiring.group),
                [topic(name) for name in wiring.topics],
                sum(t.partitions for t in wiring.consumes),
            )
            for wiring in WIRING.values()
            if wiring.group is not None
        )
    )


class AsFaust(RoundRobinPartitionAssignor):  # type: ignore[misc]
    """The round robin under faust's assignor's name: the embedded broker keeps a group's
    protocol after its members left, and refuses a member without it (the SLA engine's
    group: InconsistentGroupProtocol). Alone in the group, this one assigns."""

    name = "faust"


async def _commit_ends(kafka: str, group: str, topics: list[str], partitions: int) -> None:
    """Join `group` (its members stopped), take all `partitions` of `topics`, commit their
    ends, leave. As a member: the embedded broker refuses a commit from outside a group
    it knows (UnknownMemberId), however long its members have been gone."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=kafka,
        group_id=group,
        enable_auto_commit=False,
        partition_assignment_strategy=(RoundRobinPartitionAssignor, AsFaust),
    )
    await consumer.start()
    try:
        while len(consumer.assignment()) < partitions:
            await consumer.getmany(timeout_ms=200, max_records=1)
        await consumer.commit(await _ends(consumer))
    finally:
        await consumer.stop()


async def _ends(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    """Each assigned partition's end: the high watermark of a fetch at the end ListOffsets
    gives (the embedded broker answers ListOffsets with its last batch's base offset + 1:
    `gridloop.kafka.replay`, docs/benchmarks.md "Tansu's end offsets")."""
    parts = sorted(consumer.assignment())
    for tp, near_end in (await consumer.end_offsets(parts)).items():
        consumer.seek(tp, max(near_end - 1, 0))
    ends: dict[TopicPartition, int] = {}
    while len(ends) < len(parts):
        await consumer.getmany(timeout_ms=200)
        ends |= {tp: high for tp in parts if (high := consumer.highwater(tp)) is not None}
    return ends
