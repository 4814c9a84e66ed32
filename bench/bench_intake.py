"""Intake: reports accepted per second over HTTP on one worker, against raw produce.

    python -m bench.bench_intake [--single 10000] [--concurrency 64] [--bulk 50000]
                                 [--batch 500] [--bulk-concurrency 2]

One intake worker (`gridloop run intake`: one uvicorn process) on the embedded broker and
database (or KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI). Supervisor reports at points of the
demo district: each is validated, located in its grid, searched for duplicates, numbered
(filed by rule) and answered 202 once Kafka acknowledged its two events. Clients (aiohttp,
this process) send:

- single: `POST /reports`, `--concurrency` requests in flight;
- bulk: `POST /reports/batch` of `--batch` reports, `--bulk-concurrency` in flight.

The ceiling is raw aiokafka `acks=all` produce of the same records (the events intake
publishes for the same reports) to the same broker in the same run: all sent then awaited
(the broker's rate), and one report's two records at a time by `--concurrency` senders
(what a request waits for); ratios are to the better of the two. Beside the single phase,
a bare FastAPI endpoint that validates the same bodies and produces records of the same
sizes (`bench.bare_intake`), under the same load. Targets (issues 7 and 20): single ≥
2,000/s and ≥ 0.5 × the bare endpoint; bulk ≥ 0.5 × raw.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from bench.servers import (
    NAMESPACE,
    Servers,
    cpu_seconds,
    launcher,
    load,
    machine,
    quantiles,
    servers,
    system_env,
    table,
    topic,
)
from gridloop import embedded
from gridloop.auth import CredentialStore, Principal, Role
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.kafka import ensure_topics
from gridloop.mongo import Document
from schemas.envelope import Envelope, encode
from schemas.topics import topic_for
from services.intake.handlers import SOURCE
from services.intake.reporting import decide_report
from services.intake.requests import ReportIn, report_of
from system.up import System

Record = tuple[str, bytes, bytes, list[tuple[str, bytes]]]  # topic, key, value, headers
SUPERVISOR = Principal(Role.supervisor, "SUP-0001")


def reports(pack: CityPack, n: int, seed: int = 7) -> list[dict[str, Any]]:
    """`n` supervisor reports at random points inside the district's grids."""
    rng, found = random.Random(seed), list[dict[str, Any]]()
    classes = [c for c in pack.classes.values() if c.kind == "event"][:8] or list(
        pack.classes.values()
    )
    while len(found) < n:
        lon, lat = rng.uniform(116.3995, 116.4085), rng.uniform(39.9195, 39.9214)
        if pack.locate(lon, lat) is None:
            continue
        cls = classes[len(found) % len(classes)]
        found.append(
            {
                "channel": "supervisor",
                "kind": cls.kind,
                "class_code": cls.code,
                "point": {"lon": round(lon, 6), "lat": round(lat, 6)},
                "description": f"巡查发现 patrol finding {len(found)}",
            }
        )
    return found


def records(pack: CityPack, bodies: list[dict[str, Any]]) -> list[list[Record]]:
    """The events intake publishes for each report (reported + filed), encoded."""
    now, out = datetime.now(UTC), []
    for n, body in enumerate(bodies):
        report = ReportIn.model_validate(body)
        number = f"B{body['class_code']}-{now:%Y%m%d}-{n:04d}"
        command = report_of(report, str(uuid.uuid4()), SUPERVISOR)
        events = decide_report(pack, command, now, (), number)
        one = []
        for e in events:
            key, value, headers = encode(Envelope(e, SOURCE))
            one.append((topic(topic_for(e.ce_type)), key, value, list(headers)))
        out.append(one)
    return out


async def raw_produce(
    kafka: str, reports: list[list[Record]], concurrency: int
) -> tuple[float, float, float]:
    """Reports per second (all sent then awaited, `concurrency` reports in flight), and the
    producer's CPU a report when all are sent at once."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka, acks="all", enable_idempotence=False, linger_ms=2
    )
    await producer.start()
    try:
        # Warm: metadata and connections to every partition's leader, as the service has.
        warm = [await producer.send(t, v, k, headers=h) for r in reports[:200] for t, k, v, h in r]
        await asyncio.gather(*warm)
        started = time.perf_counter()
        cpu = time.process_time()
        for i in range(0, len(reports), 10_000):  # as bench_sla: bounded futures in flight
            chunk = reports[i : i + 10_000]
            futures = [await producer.send(t, v, k, headers=h) for r in chunk for t, k, v, h in r]
            await asyncio.gather(*futures)
        bulk = len(reports) / (time.perf_counter() - started)
        cpu = (time.process_time() - cpu) / len(reports)
        queue = iter(reports)

        async def sender() -> None:
            for report in queue:
                sent = [await producer.send(t, v, k, headers=h) for t, k, v, h in report]
                await asyncio.gather(*sent)

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return bulk, len(reports) / (time.perf_counter() - started), cpu
    finally:
        await producer.stop()


class Load:
    """HTTP clients keeping `concurrency` requests in flight until the bodies run out."""

    def __init__(self, url: str, token: str, concurrency: int) -> None:
        self.url, self.concurrency = url, concurrency
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.seconds = 0.0  # the last run's

    async def run(self, path: str, bodies: list[bytes]) -> float:
        """Seconds to send every body and read its answer."""
        queue = iter(bodies)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def client() -> None:
                for body in queue:
                    started = time.perf_counter()
                    async with http.post(self.url + path, data=body, headers=self.headers) as r:
                        await r.read()
                        self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                    self.latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(self.concurrency)))
            self.seconds = time.perf_counter() - started
            return self.seconds

    def summary(self) -> str:
        p50, p99, worst = quantiles(self.latencies)
        spread = f"p50 {p50 * 1e3:,.1f} ms, p99 {p99 * 1e3:,.1f} ms, max {worst * 1e3:,.0f} ms"
        return f"{spread}; answers {self.statuses}"


async def issue_token(mongodb: str, database: str) -> str:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb)
    try:
        return await CredentialStore(client[database]).issue(Role.supervisor, "SUP-0001", "bench")
    finally:
        await client.close()


def phase(
    label: str, clients: Load, path: str, bodies: list[bytes], reports: int, base: float, pid: int
) -> list[tuple[str, str]]:
    """Send `bodies` (holding `reports` reports); the rows of the table it makes."""
    print(f"… {label} (load {load()})", flush=True)
    cpu = cpu_seconds(pid)
    rate = reports / asyncio.run(clients.run(path, bodies))
    cpu = (cpu_seconds(pid) - cpu) / reports
    return [
        (label, f"{rate:,.0f} reports/s ({rate / base:.2f} of raw; load {load()})"),
        ("  latency of a request", clients.summary()),
        ("  intake's CPU a report", f"{cpu * 1e6:,.0f} µs"),
    ]


def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    pack = load_city_pack(DEMO_CITY_PACK)
    single = reports(pack, args.single, seed=1)
    bulk = reports(pack, args.bulk, seed=2)
    raw = records(pack, bulk or single)  # the ceiling's records: the bulk's, else the singles'
    rows = [("machine", machine()), ("date", datetime.now(UTC).isoformat(timespec="minutes"))]
    with servers(work) as s:
        asyncio.run(ensure_topics(s.kafka, namespace=NAMESPACE))
        print(f"… raw produce (load {load()})", flush=True)
        base, paced, cpu = asyncio.run(raw_produce(s.kafka, raw, args.concurrency))
        rows += [
            (
                "raw produce, all then awaited",
                f"{base:,.0f} reports/s (2 records each), {cpu * 1e6:,.0f} µs of CPU a report",
            ),
            (f"raw produce, {args.concurrency} in flight", f"{paced:,.0f} reports/s"),
        ]
        base = max(base, paced)  # the ceiling: the better of the two
        bare = 0.0
        if single:
            bare, found = bare_phase(args, s, single, raw)
            rows += found
        # Another version first (--compare), then this one: both on the same servers.
        for name, checkout in ([("before", args.compare)] if args.compare else []) + [
            ("this version", None)
        ]:
            rows.append((f"— {name}", str(checkout or Path.cwd())))
            rows += intake_phases(args, s, work, launcher(checkout), single, bulk, base, bare)
    print()
    table(rows)
    shutil.rmtree(work, ignore_errors=True)


def bare_phase(
    args: argparse.Namespace, s: Servers, single: list[dict[str, Any]], raw: list[list[Record]]
) -> tuple[float, list[tuple[str, str]]]:
    """The bare endpoint (`bench.bare_intake`) under the single phase's load: its rate, and
    the rows it makes."""
    sizes = [sum(len(r[n][2]) for r in raw) // len(raw) for n in range(2)]
    port = embedded.free_port()
    argv = [str(port), s.kafka, topic("reports"), ",".join(map(str, sizes))]
    bare = subprocess.Popen([sys.executable, "-m", "bench.bare_intake", *argv])
    try:
        _wait_for_port(port)
        bodies = [json.dumps(b).encode() for b in single]
        clients = Load(f"http://127.0.0.1:{port}", "none", args.concurrency)
        label = f"bare FastAPI endpoint, {args.concurrency} in flight"
        found = phase(label, clients, "/reports", bodies, len(single), 1.0, bare.pid)
    finally:
        bare.terminate()
        bare.wait(10)
    rate = len(single) / clients.seconds
    found[0] = (label, f"{rate:,.0f} reports/s (validates, produces {sizes} bytes; load {load()})")
    found[2] = ("  its CPU a report", found[2][1])
    return rate, found


def _wait_for_port(port: int, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def intake_phases(
    args: argparse.Namespace,
    s: Servers,
    work: Path,
    start: tuple[str, ...],
    single: list[dict[str, Any]],
    bulk: list[dict[str, Any]],
    base: float,
    bare: float,
) -> list[tuple[str, str]]:
    """One intake worker (started by `start`) on a database of its own: the single and the
    bulk phases; the single beside the bare endpoint's rate (`bare`)."""
    env, database = system_env(s, work / "data", ("intake",))
    token = asyncio.run(issue_token(s.mongodb, database))
    system = System(env, work / "logs", ("intake",), launcher=start)
    system.start()
    rows: list[tuple[str, str]] = []
    try:
        pid = system.processes["intake"].proc.pid  # type: ignore[union-attr]
        print(f"intake pid {pid} ({' '.join(start)})", flush=True)
        url = system.url("intake")
        if single:
            bodies = [json.dumps(b).encode() for b in single]
            singles = Load(url, token, args.concurrency)
            label = f"POST /reports, {args.concurrency} in flight"
            found = phase(label, singles, "/reports", bodies, len(single), base, pid)
            rate = len(single) / singles.seconds
            found.insert(1, ("  beside the bare endpoint", f"{rate / bare:.2f} (target ≥ 0.5)"))
            rows += found
        if bulk:
            batches = [
                json.dumps(bulk[i : i + args.batch]).encode()
                for i in range(0, len(bulk), args.batch)
            ]
            bulks = Load(url, token, args.bulk_concurrency)
            label = f"POST /reports/batch of {args.batch}, {args.bulk_concurrency} in flight"
            rows += phase(label, bulks, "/reports/batch", batches, len(bulk), base, pid)
    finally:
        system.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--single", type=int, default=10_000, help="single reports to send")
    parser.add_argument("--concurrency", type=int, default=64, help="single requests in flight")
    parser.add_argument("--bulk", type=int, default=50_000, help="reports to send in batches")
    parser.add_argument("--batch", type=int, default=500, help="reports a batch")
    parser.add_argument("--bulk-concurrency", type=int, default=2, help="batches in flight")
    parser.add_argument(
        "--compare",
        type=Path,
        help="another checkout of gridloop (with its .venv): measured first, on the same servers",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run(args)


if __name__ == "__main__":
    main()
