"""The SLA engine holding many open deadlines, as `gridloop run sla` runs it (its own process).

    python -m bench.bench_sla [--open 1000000] [--window 60000] [--rate 1000]

On the embedded broker and database by default; set KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI
to use external ones (a scratch cluster: the bench uses the service's own group and topics,
and a database of its own). The database is the commands' heads, which the engine reads
for the cases falling due each tick (without one, each tick waited 5 s for the server
selection to fail: the due → breach delay measured that). Reports, beside their ceilings:

1. load: `--open` cases dispatched with a deadline a month away, pre-encoded and produced raw
   in batches; the raw produce rate and a bare consumer's read rate of the same records are
   the ceiling of the service's ingest rate (until its due-time index holds them all), and
   a bare faust worker reading them (and writing a table key each: `bench.faust_floor`) the
   floor of any faust agent;
2. memory: the service's resident set (VmRSS, VmHWM from /proc) holding them;
3. delay: `--window` more cases whose deadlines fall due at `--rate` per second; the delay
   from each deadline to its breach on the `sla` topic (the record's timestamp) and to a
   consumer reading it, p50 / p99 / max;
4. recovery: stop, start; the time until the table is recovered (the due-time index holds
   every open case again) and until a deadline falling due 1 s after the start is breached,
   and the SLA events repeated across it (the same id twice on `sla`).

The pack is the demo pack with every clock in natural time, so that the deadlines fall due
when the bench says whatever the hour. Targets (issue 5): RSS < 1.5 GiB, p99 < 1 s at
1,000 due/s, recovery < 2 min; issue 20's: ingest ≥ 0.25 of the raw consume, 0 repeated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.servers import NAMESPACE, machine, servers, topic
from gridloop import embedded
from gridloop.config import DEMO_CITY_PACK
from gridloop.kafka import ensure_topics
from schemas.envelope import Envelope, encode
from schemas.events import Actor, CaseDispatched, Role
from schemas.topics import DISPATCHES, SLA
from system.up import System

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]
ACTOR = Actor(role=Role.command_centre, id="bench")
DEPARTMENTS = ("WATER", "SANITATION", "TRAFFIC-POLICE", "GREENING")


def write_pack(target: Path) -> Path:
    """The demo pack, every class on the natural clock."""
    shutil.copytree(DEMO_CITY_PACK, target)
    sla: dict[str, Any] = yaml.safe_load((target / "sla.yaml").read_text(encoding="utf-8"))
    sla["rules"].append({"clock": "natural"})
    (target / "sla.yaml").write_text(yaml.safe_dump(sla, allow_unicode=True), "utf-8")
    return target


def dispatched(case_id: str, at: datetime, deadline: datetime) -> Record:
    data = CaseDispatched(
        case_id=case_id,
        version=3,
        actor=ACTOR,
        department=DEPARTMENTS[hash(case_id) % len(DEPARTMENTS)],
        deadline=deadline,
        rule="class default",
    )
    key, value, headers = encode(Envelope(data, "/bench", at))
    return key, value, list(headers)


async def produce(bootstrap: str, records: list[Record]) -> float:
    """Produce pre-encoded records in batches, acks from all replicas; records per second."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,  # the embedded broker has no InitProducerId
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        for chunk in range(0, len(records), 20_000):
            futures = [
                await producer.send(topic(DISPATCHES.name), value, key, headers=headers)
                for key, value, headers in records[chunk : chunk + 20_000]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(records) / (time.perf_counter() - started)


async def consume_rate(bootstrap: str, topic: str, count: int) -> float:
    """A bare consumer (no group) reading `count` records of `topic` from the start."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=8 << 20
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        await consumer.seek_to_beginning()
        started, seen = time.perf_counter(), 0
        while seen < count:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            seen += sum(len(r) for r in batch.values())
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def faust_floor(bootstrap: str, count: int, table: bool) -> float:
    """A bare faust worker's rate reading the `count` records of `dispatches` (`--table`: and
    writing a table key each), in its own process (`bench.faust_floor`)."""
    argv = [sys.executable, "-m", "bench.faust_floor", "--bootstrap", bootstrap]
    argv += ["--topic", topic(DISPATCHES.name), "--count", str(count)]
    done = subprocess.run(
        [*argv, "--table"] if table else argv,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    # faust's worker logs what the agent prints (a WARNING on stderr)
    found = re.search(r"records/s (\d+)", done.stdout + done.stderr)
    if found is None:
        raise RuntimeError(f"faust floor: {done.stdout[-500:]} {done.stderr[-2000:]}")
    return float(found[1])


async def repeats(bootstrap: str) -> tuple[int, int]:
    """Every event on `sla` so far, and how many of them repeat an earlier one's id (a
    warning, breach or escalation sent twice; consumers would drop it, but it should not be)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        sla = topic(SLA.name)
        tps = [TopicPartition(sla, p) for p in consumer.partitions_for_topic(sla) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning()
        ends, ids = await consumer.end_offsets(tps), Counter[bytes]()
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                ids.update(dict(r.headers)["ce_id"] for r in records)
        return ids.total(), sum(n - 1 for n in ids.values())
    finally:
        await consumer.stop()


def scrape(url: str) -> dict[str, float]:
    """The service's /metrics, summed by metric name (labels dropped)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if m := re.match(r"^([a-z_:]+)(?:\{[^}]*\})? ([0-9.e+-]+|NaN)$", line):
            found[m[1]] = found.get(m[1], 0.0) + float(m[2])
    return found


def index_size(url: str) -> float:
    try:
        return scrape(url).get("gridloop_sla_due_index_size", -1.0)
    except OSError:
        return -1.0


def wait_index(url: str, at_least: int, within: float) -> float:
    """Seconds until the service's due-time index holds `at_least` cases."""
    started = time.perf_counter()
    while index_size(url) < at_least:
        if time.perf_counter() - started > within:
            raise TimeoutError(f"index below {at_least} after {within}s: {index_size(url)}")
        time.sleep(1.0)  # a scrape costs the service ≈ 30 ms of CPU: not four a second
    return time.perf_counter() - started


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(rest.split()[0]) * 1024
    return found


class Breaches:
    """Reads `sla` from its end: each breach's delay from its deadline, by case."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.on_topic: dict[str, float] = {}  # case → record timestamp - deadline
        self.read: dict[str, float] = {}  # case → read here - deadline
        self.kinds: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await self.consumer.start()
        sla = topic(SLA.name)
        parts = self.consumer.partitions_for_topic(sla) or set()
        self.consumer.assign([TopicPartition(sla, p) for p in parts])
        await self.consumer.seek_to_end()
        for tp in self.consumer.assignment():
            await self.consumer.position(tp)  # resolve the end now, before anything is due
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.time()
            for records in batch.values():
                for r in records:
                    kind = dict(r.headers)["ce_type"].decode().rsplit(".", 1)[-1]
                    self.kinds[kind] = self.kinds.get(kind, 0) + 1
                    if kind != "breach":
                        continue
                    data = json.loads(r.value or b"{}")
                    if data["stage"] != "handle":
                        continue
                    due = datetime.fromisoformat(data["deadline"]).timestamp()
                    self.on_topic.setdefault(data["case_id"], r.timestamp / 1000 - due)
                    self.read.setdefault(data["case_id"], now - due)

    async def wait(self, cases: set[str], within: float) -> None:
        deadline = time.monotonic() + within
        while not cases <= self.on_topic.keys() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls what the reader task fills
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.consumer.stop()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def quantiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return (values[0],) * 3 if values else (float("nan"),) * 3
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98], max(values)


def run(held: int, window: int, rate: float, lead: float | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-sla-"))
    prefix = f"B{uuid.uuid4().hex[:6]}"
    rows: list[tuple[str, str]] = []
    with servers(work) as found:
        kafka = found.kafka
        asyncio.run(ensure_topics(kafka, namespace=NAMESPACE))
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "MONGODB_URI": found.mongodb,
            "GRIDLOOP_MONGODB_DATABASE": f"bench_sla_{uuid.uuid4().hex[:8]}",
            "GRIDLOOP_CITY_PACK": str(write_pack(work / "citypack")),
            "GRIDLOOP_DATA_DIR": str(work / "data"),
            "GRIDLOOP_SLA_PORT": str(embedded.free_port()),
            "GRIDLOOP_KAFKA_SESSION_TIMEOUT_MS": os.environ.get(
                "GRIDLOOP_KAFKA_SESSION_TIMEOUT_MS", "10000"
            ),
        }
        system = System(env, work / "logs", ("sla",))
        system.start()
        url = system.url("sla")
        try:
            # 1. load
            at = datetime.now(UTC)
            started = time.perf_counter()
            later = at + timedelta(days=30)
            records = [
                dispatched(f"{prefix}-H{n}", at, later + timedelta(seconds=n)) for n in range(held)
            ]
            encode_rate = held / (time.perf_counter() - started)
            started = time.perf_counter()
            produce_rate = asyncio.run(produce(kafka, records))
            ingest = wait_index(url, held, within=3600) + held / produce_rate
            ingest_rate = held / ingest
            del records
            consume_ceiling = asyncio.run(consume_rate(kafka, topic(DISPATCHES.name), held))
            faust_read = faust_floor(kafka, held, table=False)
            faust_write = faust_floor(kafka, held, table=True)
            pid = system.processes["sla"].proc.pid  # type: ignore[union-attr]
            mem = memory(pid)
            rows += [
                ("machine", machine()),
                ("open deadlines held", f"{held:,}"),
                ("encode (envelope)", f"{encode_rate:,.0f} records/s"),
                ("raw produce (ceiling)", f"{produce_rate:,.0f} records/s"),
                ("raw consume (ceiling)", f"{consume_ceiling:,.0f} records/s"),
                (
                    "faust agent, read only",
                    f"{faust_read:,.0f} records/s ({faust_read / consume_ceiling:.3f} of raw)",
                ),
                (
                    "faust agent + table write",
                    f"{faust_write:,.0f} records/s ({faust_write / consume_ceiling:.3f} of raw)",
                ),
                (
                    "SLA service ingest",
                    f"{ingest_rate:,.0f} records/s "
                    f"({ingest_rate / consume_ceiling:.3f} of the raw consume, "
                    f"{ingest_rate / faust_write:.2f} of faust's floor)",
                ),
                ("RSS holding them", f"{mem['VmRSS'] / 2**20:,.0f} MiB"),
            ]
            print(*(f"{k:28}{v}" for k, v in rows), sep="\n", flush=True)

            # 2. deadlines falling due at `rate` per second
            lead = lead if lead is not None else 15 + 1.5 * window / ingest_rate
            t0 = datetime.now(UTC) + timedelta(seconds=lead)
            now = datetime.now(UTC)
            due = [
                dispatched(f"{prefix}-D{n}", now, t0 + timedelta(seconds=n / rate))
                for n in range(window)
            ]
            breaches = Breaches(kafka)

            async def window_phase() -> float:
                await breaches.start()
                await produce(kafka, due)
                produced = datetime.now(UTC)
                await breaches.wait(
                    {f"{prefix}-D{n}" for n in range(window)},
                    within=lead + window / rate + 120,
                )
                await breaches.stop()
                return (t0 - produced).total_seconds()

            slack = asyncio.run(window_phase())
            on_topic = list(breaches.on_topic.values())
            read = list(breaches.read.values())
            p50, p99, worst = quantiles(on_topic)
            r50, r99, rworst = quantiles(read)
            mem = memory(pid)
            rows2 = [
                (
                    "window",
                    f"{window:,} deadlines at {rate:,.0f}/s ({slack:.0f} s after produced), "
                    f"{len(on_topic):,} breaches seen; events on sla: {breaches.kinds}",
                ),
                (
                    "due → breach on sla",
                    f"p50 {ms(p50)}, p99 {ms(p99)}, max {ms(worst)}",
                ),
                (
                    "due → breach read",
                    f"p50 {ms(r50)}, p99 {ms(r99)}, max {ms(rworst)}",
                ),
                (
                    "RSS after the window",
                    f"{mem['VmRSS'] / 2**20:,.0f} MiB (peak {mem['VmHWM'] / 2**20:,.0f} MiB)",
                ),
            ]
            print(*(f"{k:28}{v}" for k, v in rows2), sep="\n", flush=True)
            rows += rows2

            # 3. restart
            size = int(index_size(url))
            system.stop()
            started = time.perf_counter()
            system.start_service("sla", timeout=600)
            listening = time.perf_counter() - started
            probe = f"{prefix}-P"
            probe_due = datetime.now(UTC) + timedelta(seconds=1)
            probes = Breaches(kafka)

            async def probe_phase() -> None:
                await probes.start()
                await produce(kafka, [dispatched(probe, datetime.now(UTC), probe_due)])
                await probes.wait({probe}, within=900)
                await probes.stop()

            async def both() -> float:
                task = asyncio.create_task(probe_phase())
                recovered = await asyncio.to_thread(wait_index, url, size, 900)
                await task
                return recovered

            recovered = asyncio.run(both()) + listening
            breached = time.perf_counter() - started
            total, repeated = asyncio.run(repeats(kafka))
            mem = memory(system.processes["sla"].proc.pid)  # type: ignore[union-attr]
            rows3 = [
                ("restart: listening", f"{listening:.1f} s"),
                ("restart: table recovered", f"{recovered:.1f} s ({size:,} cases in the index)"),
                ("restart: breaching again", f"{breached:.1f} s (a deadline 1 s after start)"),
                ("events on sla after it", f"{probes.kinds}"),
                ("sla events repeated", f"{repeated:,} of {total:,} (a lost mark repeats one)"),
                ("RSS after recovery", f"{mem['VmRSS'] / 2**20:,.0f} MiB"),
            ]
            print(*(f"{k:28}{v}" for k, v in rows3), sep="\n", flush=True)
            rows += rows3
        finally:
            system.stop()
    print()
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--open", type=int, default=1_000_000, help="open deadlines to hold")
    parser.add_argument("--window", type=int, default=60_000, help="deadlines falling due")
    parser.add_argument("--rate", type=float, default=1_000.0, help="deadlines due per second")
    parser.add_argument("--lead", type=float, default=None, help="seconds before the first")
    args = parser.parse_args()
    # A SIGTERM (a `timeout`) unwinds like Ctrl-C, so the servers started here stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run(args.open, args.window, args.rate, args.lead)


if __name__ == "__main__":
    main()
