"""The suite's invariants, computed from the log, the projection and what receivers saw."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from schemas.topics import TOPICS
from tests.faults.conftest import World
from tests.faults.harness import Receipt
from tests.helpers import eventually

Record: TypeAlias = ConsumerRecord[bytes, bytes]
LIFECYCLE_TYPES_PREFIX = "gridloop.case."


async def read_all(world: World, topic: str, within: float = 60.0) -> list[Record]:
    """Every record of `topic` (in the world's namespace), up to each partition's high
    watermark at the first fetch (Tansu's ListOffsets can answer short of the last batch, so
    it is not asked)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=world.kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        named = world.topic(topic)
        partitions = [TopicPartition(named, p) for p in range(TOPICS[topic].partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = {}
        records: list[Record] = []
        deadline = time.monotonic() + within
        while True:
            assert time.monotonic() < deadline, f"timed out reading {topic}"
            batch = await consumer.getmany(timeout_ms=300, max_records=2000)
            for tp in partitions:
                if tp not in ends and (high := consumer.highwater(tp)) is not None:
                    ends[tp] = high
            for tp, recs in batch.items():
                records.extend(r for r in recs if r.offset < ends.get(tp, r.offset + 1))
            if len(ends) == len(partitions) and all(
                [await consumer.position(tp) >= end for tp, end in ends.items()]
            ):
                return records
    finally:
        await consumer.stop()


async def committed(world: World, group: str, topic: str) -> int:
    """How many records of `topic` the group has committed (the sum of its offsets); both
    named as in the wiring, the world's namespace added here."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=world.kafka, group_id=world.topic(group), enable_auto_commit=False
    )
    await consumer.start()
    try:
        named = world.topic(topic)
        partitions = [TopicPartition(named, p) for p in range(TOPICS[topic].partitions)]
        return sum([await consumer.committed(tp) or 0 for tp in partitions])
    finally:
        await consumer.stop()


def header(record: Record, name: str) -> str:
    raw: bytes = dict(record.headers).get(name, b"")
    return raw.decode("utf-8", "replace")


@dataclass
class Figures:
    submitted: int = 0
    acknowledged: int = 0
    abandoned: int = 0
    client_retries: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    cases: int = 0  # distinct case ids with a `reported` event in the log
    projected: int = 0  # documents in `cases`
    doubled_cases: list[str] = field(default_factory=list)  # two different `reported` events
    unknown_cases: list[str] = field(default_factory=list)  # a case no client asked for
    lost: list[str] = field(default_factory=list)  # acknowledged, but no case
    repeated_records: int = 0  # the same event written twice (dropped by consumers)
    doubled_transitions: list[str] = field(default_factory=list)
    webhooks: int = 0  # requests the receivers got
    webhooks_delivered: int = 0  # answered 2xx
    webhook_ids: int = 0  # distinct webhook-id
    notifications: int = 0  # distinct (department, case, type, version, SLA stage and tier)
    retries: int = 0  # requests beyond the first of an id
    redelivered: int = 0  # ids delivered (2xx) more than once
    unstable_ids: list[str] = field(default_factory=list)  # a notification with two ids
    undelivered: list[str] = field(default_factory=list)  # acknowledged case, lead not told
    dead_letters: dict[str, int] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("reports submitted", str(self.submitted)),
            ("reports acknowledged (202)", str(self.acknowledged)),
            ("reports abandoned by their client", str(self.abandoned)),
            ("client retries (same Idempotency-Key)", str(self.client_retries)),
            ("intake answers", ", ".join(f"{k}: {v}" for k, v in sorted(self.answers.items()))),
            ("cases (distinct case ids reported in the log)", str(self.cases)),
            ("cases projected", str(self.projected)),
            ("duplicate cases", str(len(self.doubled_cases))),
            ("lost (acknowledged, no case)", str(len(self.lost))),
            ("cases no client asked for", str(len(self.unknown_cases))),
            ("records written twice (dropped as duplicates)", str(self.repeated_records)),
            ("transitions twice in a timeline", str(len(self.doubled_transitions))),
            ("webhook requests received", str(self.webhooks)),
            ("webhooks delivered (2xx)", str(self.webhooks_delivered)),
            ("distinct webhook ids", str(self.webhook_ids)),
            (
                "notifications (department, case, type, version; an SLA fact's stage and tier)",
                str(self.notifications),
            ),
            ("notifications with more than one webhook id", str(len(self.unstable_ids))),
            ("webhook retries (same id again)", str(self.retries)),
            ("webhook ids delivered (2xx) more than once", str(self.redelivered)),
            ("acknowledged cases whose lead department was not told", str(len(self.undelivered))),
            (
                "dead letters",
                ", ".join(f"{k}: {v}" for k, v in sorted(self.dead_letters.items()) if v) or "0",
            ),
        ]

    def problems(self) -> dict[str, list[str]]:
        found = {
            "duplicate cases": self.doubled_cases,
            "lost": self.lost,
            "unknown cases": self.unknown_cases,
            "doubled transitions": self.doubled_transitions,
            "unstable webhook ids": self.unstable_ids,
            "undelivered": self.undelivered,
        }
        return {k: v[:10] for k, v in found.items() if v}


def webhook_figures(receipts: list[Receipt], figures: Figures) -> dict[str, set[str]]:
    """Fill the webhook figures; return the departments told of each case's dispatch."""
    ids_of: dict[tuple[str, str, str, Any, str], set[str]] = defaultdict(set)
    per_id: Counter[str] = Counter()
    ok_per_id: Counter[str] = Counter()
    told: dict[str, set[str]] = defaultdict(set)
    for r in receipts:
        ids_of[(r.department, r.case_id, r.type, r.version, r.fact)].add(r.webhook_id)
        per_id[r.webhook_id] += 1
        if r.status < 300:
            ok_per_id[r.webhook_id] += 1
            if r.type == "case.dispatched":
                told[r.case_id].add(r.department)
    figures.webhooks = len(receipts)
    figures.webhooks_delivered = sum(ok_per_id.values())
    figures.webhook_ids = len(per_id)
    figures.notifications = len(ids_of)
    figures.retries = sum(n - 1 for n in per_id.values())
    figures.redelivered = sum(1 for n in ok_per_id.values() if n > 1)
    figures.unstable_ids = [f"{k}: {sorted(v)}" for k, v in ids_of.items() if len(v) > 1]
    return told


async def audit(world: World) -> Figures:
    """Every invariant of the suite, over everything that happened so far."""
    ledger = world.ledger
    figures = Figures(
        submitted=len(ledger.submitted),
        acknowledged=len(ledger.acked),
        abandoned=len(ledger.abandoned),
        client_retries=ledger.retries,
        answers=dict(ledger.answers),
    )
    reported: dict[str, set[str]] = defaultdict(set)
    seen: Counter[str] = Counter()
    for record in await read_all(world, "reports"):
        event_id = header(record, "ce_id")
        seen[event_id] += 1
        if header(record, "ce_type") == "gridloop.case.reported":
            reported[(record.key or b"").decode()].add(event_id)
    figures.cases = len(reported)
    figures.repeated_records = sum(n - 1 for n in seen.values())
    figures.doubled_cases = [c for c, ids in reported.items() if len(ids) > 1]
    asked = set(ledger.submitted.values())
    figures.unknown_cases = [c for c in reported if c not in asked]
    async with world.db() as db:
        docs = {d["_id"]: d async for d in db["cases"].find({})}
    figures.projected = len(docs)
    figures.lost = [c for c in ledger.acked.values() if c not in reported or c not in docs]
    for case_id, doc in docs.items():
        transitions = Counter(
            (e["type"], e["version"])
            for e in doc.get("timeline", [])
            if not e["type"].startswith("gridloop.")
        )
        events = Counter(e["event_id"] for e in doc.get("timeline", []))
        twice = [t for t, n in transitions.items() if n > 1]
        twice += [e for e, n in events.items() if n > 1]
        if twice:
            figures.doubled_transitions.append(f"{case_id}: {twice}")
    told = webhook_figures(world.receiver.receipts, figures)
    figures.undelivered = [
        c
        for c in ledger.acked.values()
        if c in docs and docs[c].get("department") not in told.get(c, set())
    ]
    for name in TOPICS:
        if name.endswith(".dlq"):
            figures.dead_letters[name] = len(await read_all(world, name))
    return figures


async def settled(world: World, within: float = 240.0) -> None:
    """Wait until every acknowledged case is dispatched and its lead department told."""

    done: set[str] = set()

    async def probe() -> bool:
        await asyncio.sleep(0.5)  # the database is shared with the system: poll gently
        waiting = [c for c in world.ledger.acked.values() if c not in done]
        async with world.db() as db:
            departments = {
                d["_id"]: d.get("department")
                async for d in db["cases"].find({"_id": {"$in": waiting}}, {"department": 1})
            }
        told = webhook_figures(world.receiver.receipts, Figures())
        done.update(c for c, d in departments.items() if d and d in told.get(c, set()))
        return len(done) == len(set(world.ledger.acked.values()))

    try:
        await eventually(probe, within=within, what="every acknowledged case dispatched and told")
    except AssertionError as exc:
        waiting = [c for c in world.ledger.acked.values() if c not in done][:5]
        async with world.db() as db:
            docs = [
                await db["cases"].find_one({"_id": c}, {"state": 1, "department": 1, "version": 1})
                for c in waiting
            ]
        seen = [(r.case_id, r.department, r.type, r.status) for r in world.receiver.receipts]
        raise AssertionError(
            f"{exc}: {len(set(world.ledger.acked.values()) - done)} waiting, e.g. {docs}; "
            f"their webhooks: {[s for s in seen if s[0] in waiting]}"
        ) from exc
