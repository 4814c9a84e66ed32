"""Projections: lifecycle events written into MongoDB per second by the projections
service's store, against raw `bulk_write` of the same changes to the same server.

    python -m bench.bench_projections [--cases 5000] [--poll 500] [--single 4000]

On the embedded database (or MONGODB_URI). Each case has 8 events (reported, filed,
dispatched, acknowledged, an SLA warning, handled, checked, closed), interleaved across
cases as a consumer sees them. Measured, each into a fresh database:

- raw (ceiling): one upsert per event carrying its timeline entry and every field it sets,
  `bulk_write` by `--poll` events: the least a projection must write;
- `CaseStore.apply_many`, by `--poll` events (a consumer's poll, as the service projects
  them): one guarded upsert an event when it is new and the newest of its case, `apply`'s
  writes one by one when not (idempotent and order-tolerant either way);
- `CaseStore.apply`, one event at a time, `--single` events (one round trip a write);
- `apply_many` again into a database with the service's indexes (`create_indexes`), and
  with the queues of a rare mark as full indexes instead of partial ones (`MARKED`, as
  before issue 20): what the indexes cost a case, and the embedded server's CPU an event
  (SecantusDB rewrites every entry of every index at each update).

Decoding the Kafka records is not counted (`bench_envelope` measures it). Target (issue 7):
≥ 0.7 × raw.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pymongo import ASCENDING, AsyncMongoClient, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from bench.servers import cpu_seconds, load, machine, servers, table
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import CaseEvent, SlaEvent
from services.projections.core import facts, sla_change, state_change, timeline_entry
from services.projections.store import MARKED, CaseStore
from tests.samples import sample

LIFECYCLE = (
    ("gridloop.case.reported", 1),
    ("gridloop.case.filed", 2),
    ("gridloop.case.dispatched", 3),
    ("gridloop.case.acknowledged", 3),
    ("gridloop.sla.warning", 3),
    ("gridloop.case.handled", 4),
    ("gridloop.case.checked", 5),
    ("gridloop.case.closed", 6),
)


def case_events(case_id: str, at: datetime) -> list[Envelope]:
    found = []
    for n, (ce_type, version) in enumerate(LIFECYCLE):
        key = "version" if n in (0, 1, 2, 5, 6, 7) else "case_version"
        data = sample(ce_type, case_id=case_id, **{key: version})
        found.append(Envelope(data, "/bench", at + timedelta(minutes=n)))
    return found


def stream(cases: int, seed: int = 3) -> list[Envelope]:
    """Every case's events in order, cases interleaved at random (as partitions mix them)."""
    rng, at = random.Random(seed), datetime.now(UTC)
    pending = [case_events(f"P-{uuid.uuid4().hex[:12]}", at) for _ in range(cases)]
    out: list[Envelope] = []
    while pending:
        i = rng.randrange(len(pending))
        out.append(pending[i].pop(0))
        if not pending[i]:
            pending[i] = pending[-1]
            pending.pop()
    return out


def raw_write(env: Envelope) -> UpdateOne:
    """One upsert with all an event changes on its case, no guard."""
    fields = facts(env)
    if isinstance(env.data, CaseEvent):
        fields |= state_change(env)
    elif isinstance(env.data, SlaEvent):
        fields |= sla_change(env.data)
    update: Document = {"$push": {"timeline": timeline_entry(env)}}
    return UpdateOne(
        {"_id": env.data.case_id}, update | ({"$set": fields} if fields else {}), upsert=True
    )


def rate(count: int, work: Callable[[], Awaitable[None]]) -> float:
    async def timed() -> float:
        started = time.perf_counter()
        await work()
        return count / (time.perf_counter() - started)

    return asyncio.run(timed())


def run(cases: int, poll: int, single: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-projections-"))
    events = stream(cases)
    chunks = [events[i : i + poll] for i in range(0, len(events), poll)]
    rows = [("machine", machine()), ("date", datetime.now(UTC).isoformat(timespec="minutes"))]
    rows.append(("events", f"{len(events):,} ({cases:,} cases × {len(LIFECYCLE)})"))
    with servers(work, need_kafka=False) as s:

        def fresh() -> tuple[AsyncMongoClient[Document], AsyncDatabase[Document]]:
            client: AsyncMongoClient[Document] = AsyncMongoClient(s.mongodb, tz_aware=True)
            return client, client[f"bench_{uuid.uuid4().hex[:8]}"]

        async def raw() -> None:
            client, db = fresh()
            ops = [[raw_write(e) for e in chunk] for chunk in chunks]  # prepared: not ours
            for batch in ops:
                await db["cases"].bulk_write(batch)
            await client.close()

        async def many() -> None:
            client, db = fresh()
            store = CaseStore(db)
            for chunk in chunks:
                await store.apply_many(chunk)
            await client.close()

        async def one_by_one() -> None:
            client, db = fresh()
            store = CaseStore(db)
            for env in events[:single]:
                await store.apply(env)
            await client.close()

        async def indexed(full_marks: bool) -> None:
            client, db = fresh()
            store = CaseStore(db)
            await store.create_indexes()
            if full_marks:  # the queues of a rare mark as they were: full indexes
                for queue in MARKED:
                    await db["cases"].drop_index(queue.name)
                    await db["cases"].create_index([(k, ASCENDING) for k in queue.replaces])
            for chunk in chunks:
                await store.apply_many(chunk)
            await client.close()

        def server_cpu(work: Callable[[], Awaitable[None]]) -> tuple[float, str]:
            pid = s.pids.get("secantusdb")
            before = cpu_seconds(pid) if pid else 0.0
            found = rate(len(events), work)
            if not pid:
                return found, "the server is not ours to measure"
            spent = (cpu_seconds(pid) - before) / len(events) * 1e6
            return found, f"server {spent:,.0f} µs CPU an event"

        print(f"… raw bulk_write (load {load()})", flush=True)
        base = rate(len(events), raw)
        rows.append((f"raw bulk_write by {poll}", f"{base:,.0f} events/s (load {load()})"))
        print(f"… apply_many (load {load()})", flush=True)
        ours = rate(len(events), many)
        rows.append((f"CaseStore.apply_many by {poll}", f"{ours:,.0f} events/s "
                     f"({ours / base:.2f} of raw; load {load()})"))  # fmt: skip
        print(f"… apply (load {load()})", flush=True)
        each = rate(min(single, len(events)), one_by_one)
        rows.append(("CaseStore.apply, one by one", f"{each:,.0f} events/s "
                     f"({each / base:.2f} of raw; load {load()})"))  # fmt: skip
        for full_marks, name in ((True, "its indexes, rare marks full"), (False, "its indexes")):
            print(f"… apply_many with {name} (load {load()})", flush=True)
            found, spent = server_cpu(lambda: indexed(full_marks))  # noqa: B023
            rows.append((f"CaseStore.apply_many, {name}", f"{found:,.0f} events/s "
                         f"({found / base:.2f} of raw; {spent}; load {load()})"))  # fmt: skip
    print()
    table(rows)
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--cases", type=int, default=5_000, help="cases of 8 events each")
    parser.add_argument("--poll", type=int, default=500, help="events a poll (bulk_write)")
    parser.add_argument("--single", type=int, default=4_000, help="events applied one by one")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run(args.cases, args.poll, args.single)


if __name__ == "__main__":
    main()
