"""The floor of a case's cost: bare aiokafka and PyMongo loops that move the records a case
caused and make the database commands it made, service by service, as counted in the same
end-to-end run (`bench_e2e`: each service's `/metrics`). What they spend a case is what
any implementation over these servers and clients must spend; what a service spends above
it is its own work (validation, decisions, serialisation, frameworks).

Per service, on the same servers after the system stopped, for `cases` cases arriving at
the run's rate (so its polls are as small as the service's were: a poll's round trips are
most of a case's cost at 25 cases/s):

- *before the clock*: `cases` documents put in each collection the service used
  (`floor_<service>_<collection>`);
- *timed*: a feeder (another process, `python -m bench.floor feed`, whose CPU is not
  counted) produces the records the service consumed a case (per topic, of
  `RECORD_BYTES` each) at the rate; one consumer in a group of its own reads them, a
  poll at a time (as the services' batch pipelines do); for the cases a poll holds it
  makes the service's database commands a case (each its own round trip: `find` →
  `find_one` by `_id`, `update` → `update_one`, and so on), produces its records a case,
  waits for Kafka's acknowledgement, and commits. A service that consumes nothing
  (intake: HTTP) does the same case by case at the rate.

The CPU of this process and of the servers' processes is read before and after (the
servers' includes the feeder's produce).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
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
FLOOR_SECONDS = 20.0  # each service's floor: this long at the run's rate
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
    def __init__(self, s: Servers, rate: float) -> None:
        self.s, self.rate, self.tag = s, rate, uuid.uuid4().hex[:6]
        self.cases = max(1, round(rate * FLOOR_SECONDS))
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
        producer = AIOKafkaProducer(bootstrap_servers=self.s.kafka, acks="all", linger_ms=2)
        await producer.start()
        try:
            if recipe.consumed:
                await self._consume(service, recipe, producer)
            else:
                await self._rounds(service, recipe, producer)
        finally:
            await producer.stop()
        return {name: cpu_seconds(pid) - start[name] for name, pid in pids.items()}

    def _feeder(self, service: str, recipe: Recipe) -> subprocess.Popen[bytes]:
        """The records `service` consumed a case, produced at the rate by another process."""
        topics = ",".join(f"{self.topic(service, t)}={r}" for t, r in recipe.consumed.items())
        argv = ["feed", self.s.kafka, topics, str(self.cases), str(self.rate)]
        return subprocess.Popen([sys.executable, "-m", "bench.floor", *argv])

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
        owed, left = _Owed(), sum(_owed_in_all(r, self.cases) for r in recipe.consumed.values())
        per_case = sum(recipe.consumed.values())
        feeder = self._feeder(service, recipe)
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
            feeder.wait(30)

    async def _rounds(self, service: str, recipe: Recipe, producer: AIOKafkaProducer) -> None:
        owed, started = _Owed(), time.monotonic()
        for n in range(self.cases):
            await asyncio.sleep(max(0.0, started + n / self.rate - time.monotonic()))
            await self._work(service, recipe, producer, owed, 1)

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


async def measure(
    s: Servers, counted: tuple[Counts, Counts], cases: int, rate: float
) -> dict[str, Any]:
    """Each service's floor at `rate` cases a second: the CPU seconds a case of this
    process (`bench`) and of each server, by service (the recipes from `cases` cases)."""
    found: dict[str, Any] = {}
    floor = Floor(s, rate)
    try:
        for service, recipe in sorted(recipes(*counted, cases).items()):
            spent = await floor.run(service, recipe)
            found[service] = {name: seconds / floor.cases for name, seconds in spent.items()}
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


def _owed_in_all(rate: float, cases: int) -> int:
    """How many of something at `rate` a case `cases` cases make, counted as `_Owed` does."""
    owed = _Owed()
    return sum(owed.take(None, rate, 1) for _ in range(cases))


async def feed(kafka: str, topics: dict[str, float], cases: int, rate: float) -> None:
    """Produce each topic's records a case for `cases` cases at `rate` cases a second."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=2)
    await producer.start()
    payload, owed, started = os.urandom(RECORD_BYTES // 2).hex().encode(), _Owed(), time.monotonic()
    try:
        for n in range(cases):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            key = b"%d" % n
            sent = [
                await producer.send(topic, payload, key)
                for topic, each in topics.items()
                for _ in range(owed.take(topic, each, 1))
            ]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()


if __name__ == "__main__":
    _, kafka, listed, cases, rate = sys.argv[1:6]
    pairs = (pair.rsplit("=", 1) for pair in listed.split(","))
    asyncio.run(feed(kafka, {t: float(r) for t, r in pairs}, int(cases), float(rate)))
