"""Evaluation: events per second through `ScoreStore` one at a time (`add`, an
`apply_many` of one: what the service did, one event and its round trips at a time)
against a consumer's poll at once (`apply_many`), and the scores they dirtied recomputed
one score at a time (a read on the `keys` index, the formulas, a write: what the service
did) against the running totals (`recompute_dirty`: the dirty cases read, claimed, the
totals moved and the moved scores written).

    python -m bench.bench_evaluation [--events 20000] [--poll 500] [--single 3000]

On the embedded SecantusDB (or MONGODB_URI), each way into a fresh database of the same
server in the same run. The events are the first `--events` of a simulated month of the
demo city (`bench.report_month.Month`: reports, filings, dispatches, handling, checks,
closures, SLA warnings and breaches; a fixed seed) in time order, cases interleaved as a
consumer sees them. Decoding the Kafka records is not counted (`bench_envelope`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pymongo import AsyncMongoClient

from bench.report_month import Month
from bench.servers import load, machine, servers, table
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.mongo import Document
from schemas.envelope import Envelope
from services.evaluation.facts import CaseFacts
from services.evaluation.report.model import Period
from services.evaluation.scores import score
from services.evaluation.store import Key, ScoreStore

MONTH_EVENTS = 500_000  # a month of the demo city at the simulator's default rates


def month_events(pack: CityPack, count: int) -> list[Envelope]:
    """The first `count` events of a simulated November, in time order."""
    period = Period.parse("2026-11", pack.city.timezone)
    month = Month(pack, period, period.end + timedelta(days=2))
    # A case has 2 to 9 events (7 or so): enough cases that the first `count` events in
    # time order are a stretch of the month, many cases still open.
    found = sorted(month.events(count // 4 + 1), key=lambda e: e.time)
    return found[:count]


async def timed(work: Callable[[], Awaitable[int]]) -> tuple[int, float]:
    """How many `work` did, and in how many seconds."""
    started = time.perf_counter()
    done = await work()
    return done, time.perf_counter() - started


class Bench:
    def __init__(self, uri: str, pack: CityPack) -> None:
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
        self.pack = pack

    async def fresh(self) -> ScoreStore:
        store = ScoreStore(self.client[f"bench_{uuid.uuid4().hex[:8]}"], self.pack)
        await store.create_indexes()
        return store

    async def one_by_one(self, events: list[Envelope]) -> float:
        store = await self.fresh()

        async def work() -> int:
            for env in events:
                await store.add(env)
            return len(events)

        done, seconds = await timed(work)
        await store.drop()
        return done / seconds

    async def batched(self, events: list[Envelope], poll: int) -> tuple[ScoreStore, float]:
        store = await self.fresh()

        async def work() -> int:
            for start in range(0, len(events), poll):
                await store.apply_many(events[start : start + poll])
            return len(events)

        done, seconds = await timed(work)
        return store, done / seconds

    async def recompute_each(self, store: ScoreStore, keys: list[Key]) -> float:
        """The scores one at a time, as the service did: one read of its facts on the
        multikey `keys` index it had, the formulas over them, and one write each."""
        await store.case_facts.create_index("keys")

        async def work() -> int:
            for key in keys:
                query = store.case_facts.find({"keys": key.id}, {"facts": 1})
                facts = [CaseFacts.model_validate(doc["facts"]) async for doc in query]
                name = store.name(key.level, key.entity)
                found = score(
                    key.level, key.entity, name, key.period, key.kind, facts, store.policy
                )
                await store.scores.replace_one(
                    {"_id": key.id}, found.model_dump(mode="json"), upsert=True
                )
            return len(keys)

        done, seconds = await timed(work)
        await store.case_facts.drop_index("keys_1")  # not the service's any more
        return done / seconds

    async def recompute_batched(self, store: ScoreStore) -> tuple[int, float, float]:
        """The dirty cases moved into the running totals (batches of 1,000 cases): how
        many score writes, and how many scores and cases a second."""
        cases = await store.pending()

        async def work() -> int:
            total = 0
            while done := await store.recompute_dirty():
                total += len(done)
            return total

        done, seconds = await timed(work)
        return done, done / seconds, cases / seconds


async def dirty_keys(store: ScoreStore) -> list[Key]:
    found: set[str] = set()
    async for doc in store.case_facts.find({"dirty": {"$gt": 0}}, {"keys": 1}):
        found.update(doc.get("keys", []))
    return [Key.parse(k) for k in sorted(found)]


async def measure(uri: str, count: int, poll: int, single: int) -> list[tuple[str, str]]:
    pack = load_city_pack(DEMO_CITY_PACK)
    events = month_events(pack, count)
    cases = len({e.data.case_id for e in events})
    rows = [("events", f"{len(events):,} of {cases:,} cases (a simulated November)")]
    bench = Bench(uri, pack)
    try:
        print(f"… add, one by one (load {load()})", flush=True)
        each = await bench.one_by_one(events[:single])
        rows.append(("ScoreStore.add, one by one", f"{each:,.0f} events/s (load {load()})"))
        print(f"… apply_many (load {load()})", flush=True)
        store, many = await bench.batched(events, poll)
        rows.append((f"ScoreStore.apply_many by {poll}", f"{many:,.0f} events/s "
                     f"({many / each:.1f} × one by one; load {load()})"))  # fmt: skip
        keys = await dirty_keys(store)
        print(f"… {len(keys):,} scores, one at a time (load {load()})", flush=True)
        alone = await bench.recompute_each(store, keys)
        rows.append(("scores one at a time (read, formulas, write)", f"{alone:,.0f} scores/s"))
        print(f"… the same scores, batched (load {load()})", flush=True)
        scored, batched, moved = await bench.recompute_batched(store)
        rows.append(("recompute_dirty (running totals, 1,000 cases a batch)",
                     f"{moved:,.0f} cases/s; {batched:,.0f} score writes/s ({scored:,} "
                     f"writes; {batched / alone:.1f} × one at a time)"))  # fmt: skip
        hours = MONTH_EVENTS / many / 3600
        rows.append(("a month (500,000 events) batched", f"≈ {hours * 60:,.0f} min of apply"))
        await store.drop()
    finally:
        await bench.client.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=20_000, help="events applied in polls")
    parser.add_argument("--poll", type=int, default=500, help="events a poll (apply_many)")
    parser.add_argument("--single", type=int, default=3_000, help="events applied one by one")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows = [("machine", machine()), ("date", datetime.now(UTC).isoformat(timespec="minutes"))]
    with servers(Path(tempfile.mkdtemp(prefix="bench-evaluation-")), need_kafka=False) as s:
        rows += asyncio.run(measure(s.mongodb, args.events, args.poll, args.single))
    print()
    table(rows)


if __name__ == "__main__":
    main()
