"""The floor of a case's cost: bare aiokafka and PyMongo loops that move the records a case
caused and make the database commands it made, service by service, as counted in the same
end-to-end run (`bench_e2e`: each service's `/metrics`). What they spend a case is what
any implementation over these servers and clients must spend; what a service spends above
it is its own work (validation, decisions, serialisation, frameworks).

Per service, on the same servers after the system stopped:

- *before the clock*: the records it consumed a case (per topic, `round(cases × rate)`,
  of `RECORD_BYTES` each) produced to topics of the floor's own, and `cases` documents put
  in each collection it used (`floor_<collection>`);
- *timed*: one consumer in a group of its own reads them all, a poll at a time (as the
  services' batch pipelines do); for the cases a poll holds it makes the service's
  database commands a case (each its own round trip: `find` → `find_one` by `_id`,
  `update` → `update_one` with `$set`, and so on) and produces its records a case,
  waits for Kafka's acknowledgement, and commits. A service that consumes nothing
  (intake: HTTP) runs the same per case, ten cases at a time.

The CPU of this process and of the servers' processes is read before and after.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench.servers import Servers, cpu_seconds

RECORD_BYTES = 1024  # about a case event as a CloudEvent in JSON
PARTITIONS = 3
NO_CASES_POLL = 10  # cases a round for a service that consumes nothing
DOC = {"state": "dispatched", "note": "x" * 400, "n": 0}
Counts = dict[tuple[str, str, str], float]  # (service, family, labels) → value


@dataclass
class Recipe:
    """What one service did a case in the end-to-end run."""

    consumed: dict[str, float] = field(default_factory=dict)  # topic → records a case
    produced: dict[str, float] = field(default_factory=dict)
    commands: dict[tuple[str, str], float] = field(default_factory=dict)  # (collection, cmd)


# The database commands the floor makes, as PyMongo calls by `_id` (others are not per
# case: handshakes, index builds, cursors' next batches).
COMMANDS = ("find", "insert", "update", "delete", "findAndModify", "aggregate", "count")


def recipes(before: Counts, after: Counts, cases: int) -> dict[str, Recipe]:
    """Each service's recipe from its counters before and after `cases` cases."""
    found: dict[str, Recipe] = defaultdict(Recipe)
    for (service, family, labels), value in after.items():
        rate = (value - before.get((service, family, labels), 0.0)) / cases
        if rate <= 0:
            continue
        recipe = found[service]
        if family == "gridloop_records_consumed_total":
            recipe.consumed[labels] = rate
        elif family == "gridloop_events_produced_total":
            recipe.produced[labels] = rate
        elif family == "gridloop_db_commands_total":
            collection, command = labels.split(".", 1)
            if command in COMMANDS:
                recipe.commands[(collection, command)] = rate
    return dict(found)


class _Owed:
    """Fractional counts carried from poll to poll: 0.4 a case is 2 in 5 cases."""

    def __init__(self) -> None:
        self.carry: dict[Any, float] = defaultdict(float)

    def take(self, key: Any, rate: float, cases: float) -> int:
        self.carry[key] += rate * cases
        whole = int(self.carry[key])
        self.carry[key] -= whole
        return whole


class Floor:
    def __init__(self, s: Servers, cases: int) -> None:
        self.s, self.cases, self.tag = s, cases, uuid.uuid4().hex[:6]
        self.mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(s.mongodb)
        self.db: AsyncDatabase[dict[str, Any]] = self.mongo[f"floor_{self.tag}"]
        self.payload = os.urandom(RECORD_BYTES // 2).hex().encode()
        self.rng = random.Random(5)

    def topic(self, service: str, name: str) -> str:
        return f"floor-{self.tag}-{service}-{name}"

    async def run(self, service: str, recipe: Recipe) -> dict[str, float]:
        """The CPU seconds each process spent on `service`'s floor for `self.cases`."""
        await self._prepare(service, recipe)
        pids = {"bench": os.getpid(), **self.s.pids}
        start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        producer = AIOKafkaProducer(bootstrap_servers=self.s.kafka, acks="all", linger_ms=5)
        await producer.start()
        try:
            if recipe.consumed:
                await self._consume(service, recipe, producer)
            else:
                await self._rounds(service, recipe, producer)
        finally:
            await producer.stop()
        return {name: cpu_seconds(pid) - start[name] for name, pid in pids.items()}

    async def close(self) -> None:
        await self.mongo.drop_database(self.db.name)
        await self.mongo.close()

    async def _prepare(self, service: str, recipe: Recipe) -> None:
        topics = [self.topic(service, t) for t in (*recipe.consumed, *recipe.produced)]
        admin = AIOKafkaAdminClient(bootstrap_servers=self.s.kafka)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in set(topics)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=self.s.kafka, linger_ms=20)
        await producer.start()
        try:
            for name, rate in recipe.consumed.items():
                sent = [
                    await producer.send(self.topic(service, name), self.payload, key=b"%d" % n)
                    for n in range(round(self.cases * rate))
                ]
                await asyncio.gather(*sent)
        finally:
            await producer.stop()
        for collection in {c for c, _ in recipe.commands}:
            docs = [{"_id": str(n), **DOC} for n in range(self.cases)]
            await self.db[f"floor_{service}_{collection}"].insert_many(docs)

    async def _consume(self, service: str, recipe: Recipe, producer: AIOKafkaProducer) -> None:
        consumer = AIOKafkaConsumer(
            *(self.topic(service, t) for t in recipe.consumed),
            bootstrap_servers=self.s.kafka,
            group_id=f"floor-{self.tag}-{service}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        owed, left = _Owed(), sum(round(self.cases * r) for r in recipe.consumed.values())
        per_case = sum(recipe.consumed.values())
        try:
            while left > 0:
                polled = await consumer.getmany(timeout_ms=200, max_records=500)
                records = sum(len(batch) for batch in polled.values())
                if not records:
                    continue
                left -= records
                await self._work(service, recipe, producer, owed, records / per_case)
                await consumer.commit()
        finally:
            await consumer.stop()

    async def _rounds(self, service: str, recipe: Recipe, producer: AIOKafkaProducer) -> None:
        owed = _Owed()
        for _ in range(0, self.cases, NO_CASES_POLL):
            await self._work(service, recipe, producer, owed, NO_CASES_POLL)

    async def _work(
        self,
        service: str,
        recipe: Recipe,
        producer: AIOKafkaProducer,
        owed: _Owed,
        cases: float,
    ) -> None:
        for (collection, command), rate in recipe.commands.items():
            for _ in range(owed.take((collection, command), rate, cases)):
                await self._command(self.db[f"floor_{service}_{collection}"], command)
        sent = [
            await producer.send(self.topic(service, name), self.payload)
            for name, rate in recipe.produced.items()
            for _ in range(owed.take(name, rate, cases))
        ]
        await asyncio.gather(*sent)

    async def _command(self, collection: Any, command: str) -> None:
        key = {"_id": str(self.rng.randrange(self.cases))}  # a document that is there
        if command == "find":
            await collection.find_one(key)
        elif command == "insert":
            await collection.insert_one({"_id": uuid.uuid4().hex, **DOC})
        elif command == "update":
            await collection.update_one(key, {"$inc": {"n": 1}})
        elif command == "delete":
            await collection.delete_one({"_id": "none"})
        elif command == "findAndModify":
            await collection.find_one_and_update(key, {"$inc": {"n": 1}})
        elif command == "aggregate":
            await collection.aggregate([{"$match": key}]).to_list()
        elif command == "count":
            await collection.count_documents(key)


async def measure(s: Servers, counted: tuple[Counts, Counts], cases: int) -> dict[str, Any]:
    """Each service's floor: the CPU seconds a case of this process (`floor`) and of each
    server, by service."""
    found: dict[str, Any] = {}
    floor = Floor(s, cases)
    try:
        for service, recipe in sorted(recipes(*counted, cases).items()):
            spent = await floor.run(service, recipe)
            found[service] = {name: seconds / cases for name, seconds in spent.items()}
    finally:
        await floor.close()
    return found


def rows(
    floors: dict[str, dict[str, float]], real: dict[str, float], cases: int, services: Iterable[str]
) -> list[tuple[str, str]]:
    """Each service's CPU a case beside its floor's, and the servers' under the floor."""
    out = []
    ours = mine = 0.0
    for service in services:
        if service not in floors or service not in real:
            continue
        spent, bare = real[service] / cases, floors[service]["bench"]
        ours, mine = ours + spent, mine + bare
        out.append(
            (
                f"floor: {service}",
                f"{spent * 1e3:.1f} ms a case, floor {bare * 1e3:.2f} ms ({spent / bare:.1f} ×)",
            )
        )
    out.append(("floor: our services", f"{ours * 1e3:.1f} ms, floor {mine * 1e3:.1f} ms "
                                       f"({ours / mine:.1f} ×; target ≤ 2 ×)"))  # fmt: skip
    for server in sorted({n for f in floors.values() for n in f} - {"bench"}):
        bare = sum(f.get(server, 0.0) for f in floors.values())
        spent = real.get(server, 0.0) / cases
        out.append(
            (
                f"floor: {server} (server)",
                f"{spent * 1e3:.1f} ms a case, under the floor's commands and records "
                f"{bare * 1e3:.1f} ms ({spent / bare:.1f} ×)"
                if bare
                else "not measured",
            )
        )
    return out
