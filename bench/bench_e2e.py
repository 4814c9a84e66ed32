"""End to end: a report accepted by intake → the department's webhook received, at a steady
rate, with the consumers' lag sampled over the run.

    python -m bench.bench_e2e [--rate 200] [--duration 300] [--sample 5] [--drain 120]

The real system as `gridloop up` runs it (`system.up.System`: projections, dispatch,
notify, sla and intake, each its own process) on the embedded broker and database (or
KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI). The demo pack, with every department's webhook
pointing at a receiver in this process (it answers 204 at once and notes the arrival time by
case id; signatures are not checked here, `system.desk` does that), and no duplicate
radius (random points of a small district would otherwise merge into each other's cases).

Supervisor reports are sent open loop at `--rate` per second (each at its own time, not
after the previous answer), filed by rule, dispatched by the routing rules and notified.
The delay of a case is from its 202 to the first webhook naming it; after the last report
the bench waits for the missing webhooks (until 30 s pass without one, or `--drain` s).
Every `--sample` seconds it reads `gridloop_consumer_lag` from each service's `/metrics`
(a service updates it after each poll it handled). Targets (issue 7):
p50 ≤ 100 ms, p99 ≤ 500 ms at 200 reports/s for 5 minutes, lag not growing.

The ceiling, in the same run: the CPU each process (every service, the embedded servers,
this bench) spent while the reports were sent, per report accepted, and what the target
rate would need of each — the busiest process on one core bounds the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient

from bench import dbcost, floor
from bench.bench_intake import issue_token, reports
from bench.floor import Counts
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
)
from gridloop import embedded
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.kafka import ensure_topics
from system.up import System

SERVICES = ("projections", "dispatch", "notify", "sla", "intake")
WARM = 20  # reports sent first, at 10/s, and not counted
TARGET_RATE = 200.0  # issue 7: reports/s end to end
LAG = re.compile(r"^gridloop_consumer_lag\{[^}]*\} ([0-9.e+]+)$", re.M)


def write_pack(target: Path, hooks: int) -> Path:
    """The demo pack, webhooks to 127.0.0.1:`hooks`, no duplicate radius."""
    shutil.copytree(DEMO_CITY_PACK, target)
    path = target / "city.yaml"
    city: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dept in city["departments"]:
        if dept.get("webhook"):
            dept["webhook"]["url"] = f"http://127.0.0.1:{hooks}/hooks/{dept['code']}"
    for cls in city["classes"]:
        cls["duplicate_radius_m"] = 0
    path.write_text(yaml.safe_dump(city, allow_unicode=True), "utf-8")
    return target


class Receiver:
    """The departments' webhook endpoint: the first arrival of each case, by case id."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.messages = 0

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        self.messages += 1
        case_id = json.loads(body).get("data", {}).get("case_id")
        if case_id:
            self.arrived.setdefault(case_id, now)
        return web.Response(status=204)

    async def start(self, port: int) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hooks/{department}", self.hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner


async def lag(http: aiohttp.ClientSession, system: System) -> dict[str, int]:
    """Records each service's consumers have still to read (`gridloop_consumer_lag`)."""
    found = {}
    for name in SERVICES:
        try:
            async with http.get(f"{system.url(name)}/metrics") as answer:
                text = await answer.text()
        except aiohttp.ClientError:
            continue
        if values := LAG.findall(text):
            found[name] = int(sum(float(v) for v in values))
    return found


# What a case costs, counted from each service's own /metrics (`gridloop.dbstats`,
# `gridloop.kafka.metrics`): the database commands by collection, the records it produced
# and consumed by topic.
COUNTED = {
    "gridloop_db_commands_total": ("collection", "command"),
    "gridloop_events_produced_total": ("topic",),
    "gridloop_records_consumed_total": ("topic",),
}


async def counts(http: aiohttp.ClientSession, system: System) -> Counts:
    """Every service's counters of `COUNTED`, now."""
    found: Counts = {}
    for name in SERVICES:
        try:
            async with http.get(f"{system.url(name)}/metrics") as answer:
                text = await answer.text()
        except aiohttp.ClientError:
            continue
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = COUNTED.get(sample.name)
                if labels is not None:
                    key = ".".join(sample.labels.get(label, "?") for label in labels)
                    found[(name, sample.name, key)] = sample.value
    return found


def count_rows(before: Counts, after: Counts, cases: int) -> list[tuple[str, str]]:
    """Per service: database commands a case by collection.command, records produced and
    consumed a case by topic (what the raw floor must move too)."""
    if not cases:
        return []
    rows = []
    for family, what in (
        ("gridloop_db_commands_total", "db commands a case"),
        ("gridloop_events_produced_total", "records produced a case"),
        ("gridloop_records_consumed_total", "records consumed a case"),
    ):
        for service in SERVICES:
            each = {
                key: (value - before.get((name, fam, key), 0.0)) / cases
                for (name, fam, key), value in after.items()
                if name == service and fam == family
            }
            shown = [(k, v) for k, v in sorted(each.items(), key=lambda kv: -kv[1]) if v >= 0.005]
            if shown:
                total = sum(v for _, v in shown)
                listed = ", ".join(f"{k} {v:.2f}" for k, v in shown)
                rows.append((f"{what}: {service}", f"{total:.2f} ({listed})"))
    return rows


@dataclass(frozen=True)
class Spent:
    """What the reports sent cost: each process's CPU seconds, the services' counters
    before and after (`COUNTED`), and how many cases."""

    cpu: dict[str, float]
    counted: tuple[Counts, Counts]
    cases: int


class Run:
    """Reports at a steady rate; their 202s; the lag over time."""

    def __init__(self, system: System, token: str, bodies: list[bytes], rate: float) -> None:
        self.system, self.bodies, self.rate = system, bodies, rate
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.accepted: dict[str, float] = {}
        self.refused: dict[str, int] = {}  # status or error → count
        self.lags: list[tuple[float, dict[str, int]]] = []
        self.behind = 0.0  # the worst lateness of a send against its schedule
        self.on_sent: Callable[[], None] = lambda: None  # called when the last report is sent
        self.counted: tuple[Counts, Counts] = ({}, {})  # before the first report, after the drain

    async def send(self, http: aiohttp.ClientSession, body: bytes) -> None:
        url = f"{self.system.url('intake')}/reports"
        try:
            async with http.post(url, data=body, headers=self.headers) as answer:
                text = await answer.read()
                now = time.time()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.refused[type(exc).__name__] = self.refused.get(type(exc).__name__, 0) + 1
            return
        if answer.status == 202:
            self.accepted[json.loads(text)["case_id"]] = now
        else:
            self.refused[str(answer.status)] = self.refused.get(str(answer.status), 0) + 1

    async def sample(self, http: aiohttp.ClientSession, every: float, stop: asyncio.Event) -> None:
        started = time.monotonic()
        while not stop.is_set():
            self.lags.append((time.monotonic() - started, await lag(http, self.system)))
            await asyncio.sleep(every)

    async def go(self, every: float, receiver: Receiver, drain: float) -> None:
        """Send every report on time; then wait for their webhooks (`drain`)."""
        connector = aiohttp.TCPConnector(limit=512)
        timeout = aiohttp.ClientTimeout(total=120)  # an answer later than this: a failure
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            stop = asyncio.Event()
            before = await counts(http, self.system)
            sampler = asyncio.create_task(self.sample(http, every, stop))
            started, tasks = time.monotonic(), []
            for i, body in enumerate(self.bodies):
                due = started + i / self.rate
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                else:
                    self.behind = max(self.behind, -wait)
                tasks.append(asyncio.create_task(self.send(http, body)))
            await asyncio.gather(*tasks)
            self.on_sent()
            print(f"… sent; waiting for the last webhooks (load {load()})", flush=True)
            await wait_for_hooks(receiver, set(self.accepted), quiet=30, at_most=drain)
            stop.set()
            await sampler
            self.counted = (before, await counts(http, self.system))


async def wait_for_hooks(receiver: Receiver, cases: set[str], quiet: float, at_most: float) -> None:
    """Until every case of `cases` has its webhook, `quiet` seconds pass without a new one,
    or `at_most` seconds in all."""
    started = last = time.monotonic()
    count = len(receiver.arrived)
    while not cases <= receiver.arrived.keys():
        now = time.monotonic()
        if now - last > quiet or now - started > at_most:
            return
        await asyncio.sleep(0.5)
        if len(receiver.arrived) != count:
            last, count = time.monotonic(), len(receiver.arrived)


def lag_rows(lags: list[tuple[float, dict[str, int]]]) -> list[tuple[str, str]]:
    """The lag at a few points of the run, and its peak, per service."""
    if not lags:
        return [("consumer lag", "not sampled")]
    picks = sorted({0, len(lags) // 4, len(lags) // 2, 3 * len(lags) // 4, len(lags) - 1})
    rows = []
    for name in sorted({n for _, found in lags for n in found}):
        points = ", ".join(f"{lags[i][0]:.0f}s: {lags[i][1].get(name, 0):,}" for i in picks)
        peak = max(found.get(name, 0) for _, found in lags)
        rows.append((f"lag {name}", f"{points} (peak {peak:,})"))
    return rows


def run(
    rate: float, duration: float, every: float, drain: float, compare: Path | None = None
) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    hooks = embedded.free_port()
    pack = write_pack(work / "citypack", hooks)
    count = int(rate * duration) + WARM
    bodies = [json.dumps(b).encode() for b in reports(load_city_pack(pack), count, seed=5)]
    rows = [("machine", machine()), ("date", datetime.now(UTC).isoformat(timespec="minutes"))]
    # Another version first (--compare), then this one: each on servers of its own, started
    # afresh, with the same reports at the same rate.
    for name, checkout in ([("before", compare)] if compare else []) + [("this version", None)]:
        rows.append((f"— {name}", str(checkout or Path.cwd())))
        with servers(work / name.replace(" ", "-"), db_cost=True) as s:
            asyncio.run(ensure_topics(s.kafka, namespace=NAMESPACE))
            data_dir = work / name.replace(" ", "-") / "data"
            env, database = system_env(s, data_dir, SERVICES, pack)
            token = asyncio.run(issue_token(s.mongodb, database))
            system = System(env, work / "logs", SERVICES, launcher=launcher(checkout))
            system.start()
            try:
                sampling = (every, drain)
                found, spent = measure(system, token, bodies, rate, sampling, hooks, (s, database))
                rows += found
            finally:
                system.stop()
            # The floor, on the same servers once the system stopped (its idle polls).
            print(f"… the floor, service by service (load {load()})", flush=True)
            floors = asyncio.run(floor.measure(s, spent.counted, spent.cases, rate))
            rows += floor.rows(floors, spent.cpu, spent.cases, SERVICES)
    print()
    table(rows)
    shutil.rmtree(work, ignore_errors=True)


def where(db: tuple[str, str], case_ids: list[str]) -> str:
    """Where cases that no webhook named stand, as their projection has them."""
    client: MongoClient[dict[str, Any]] = MongoClient(db[0])
    try:
        found = client[db[1]]["cases"].find(
            {"_id": {"$in": case_ids}}, {"state": 1, "department": 1, "class_code": 1}
        )
        shown = {
            d["_id"]: f"{d.get('state')} → {d.get('department')} ({d.get('class_code')})"
            for d in found
        }
    finally:
        client.close()
    return "; ".join(f"{c}: {shown.get(c, 'not projected')}" for c in case_ids)


def cpu_rows(spent: dict[str, float], cases: int, target: float) -> list[tuple[str, str]]:
    """The CPU each process spent a case, and what the target rate would need: the ceiling
    this machine and these servers set, measured in the same run."""
    if not cases:
        return []
    each = {name: seconds / cases for name, seconds in spent.items()}
    ranked = sorted(each.items(), key=lambda kv: -kv[1])
    total = sum(each.values())
    shown = ", ".join(f"{name} {ms * 1e3:.1f}" for name, ms in ranked)
    top, top_cpu = ranked[0]
    return [
        ("CPU a case (ms)", f"{shown}; all {total * 1e3:.1f}"),
        (
            f"CPU at {target:,.0f}/s",
            f"{total * target:.1f} cores in all (the machine has {os.cpu_count()}); "
            f"{top} alone {top_cpu * target:.1f} cores, "
            f"so {1 / top_cpu:,.0f} cases/s on one core of it",
        ),
    ]


@dataclass
class Driven:
    """What a run at a steady rate saw: its reports' answers, lag and counts (`Run`), the
    webhooks (`Receiver`), and the CPU each process spent while the reports were sent."""

    run: Run
    receiver: Receiver
    cpu: dict[str, float]
    load_at_start: str
    db_cost: tuple[dbcost.Totals, dbcost.Totals]  # before and after the reports were sent

    def delays(self) -> list[float]:
        """Seconds from each accepted report's 202 to its case's first webhook."""
        arrived, accepted = self.receiver.arrived, self.run.accepted
        return [arrived[c] - t for c, t in accepted.items() if c in arrived]


def drive(
    system: System,
    token: str,
    bodies: list[bytes],
    rate: float,
    sampling: tuple[float, float],
    hooks: int,
    started: Servers,
) -> Driven:
    """Reports at `rate` after `WARM` to warm up, their webhooks received on `hooks`, and
    the CPU of every process (the servers `started`, and this one) while they were sent."""
    receiver, load_at_start = Receiver(), load()
    (every, drain), cpu = sampling, dict[str, float]()
    db_cost: list[dbcost.Totals] = [{}, {}]  # the database's CPU by command, before and after
    pids = started.pids | {n: p.proc.pid for n, p in system.processes.items() if p.proc}
    pids["bench"] = os.getpid()  # the reports' sender and the webhooks' receiver

    async def go() -> Run:
        runner = await receiver.start(hooks)
        # Warm: the first requests and polls of each service (connections, metadata).
        await Run(system, token, bodies[:WARM], 10).go(every, receiver, 30)
        run = Run(system, token, bodies[WARM:], rate)
        # CPU while sending: at a rate the system keeps up with, the work of those reports
        # (the drain's idle polling left out); at one it does not, the busiest process shows.
        cpu.update({name: cpu_seconds(pid) for name, pid in pids.items()})
        db_cost[0] = dbcost.read(started.db_cost)

        def sent() -> None:  # the database's totals as written at most 0.2 s before
            cpu.update({n: cpu_seconds(p) - cpu[n] for n, p in pids.items()})
            db_cost[1] = dbcost.read(started.db_cost)

        run.on_sent = sent
        print(f"… {len(run.bodies):,} reports at {rate:,.0f}/s (load {load()})", flush=True)
        await run.go(every, receiver, drain)
        await runner.cleanup()
        return run

    return Driven(asyncio.run(go()), receiver, cpu, load_at_start, (db_cost[0], db_cost[1]))


def measure(
    system: System,
    token: str,
    bodies: list[bytes],
    rate: float,
    sampling: tuple[float, float],
    hooks: int,
    db: tuple[Servers, str],
) -> tuple[list[tuple[str, str]], Spent]:
    driven = drive(system, token, bodies, rate, sampling, hooks, db[0])
    run, receiver, drain = driven.run, driven.receiver, sampling[1]
    delays = driven.delays()
    p50, p99, worst = quantiles(delays)
    missing = len(run.accepted) - len(delays)
    unheard = sorted(set(run.accepted) - receiver.arrived.keys())
    spent = Spent(driven.cpu, run.counted, len(run.accepted))
    return [
        ("reports", f"{len(run.bodies):,} at {rate:,.0f}/s (after {WARM} to warm up); "
                    f"sends at most {run.behind * 1e3:,.0f} ms "
                    f"late; refused {run.refused or 'none'}"),
        ("accepted → webhook", f"p50 {p50 * 1e3:,.0f} ms, p99 {p99 * 1e3:,.0f} ms, "
                               f"max {worst * 1e3:,.0f} ms ({len(delays):,} cases)"),
        ("no webhook by the end", f"{missing:,} (the end: 30 s without one, or {drain:.0f} s)"),
        ("webhooks received", f"{receiver.messages:,}"),
        *([("cases without one", where((db[0].mongodb, db[1]), unheard[:5]))] if unheard else []),
        *lag_rows(run.lags),
        *cpu_rows(driven.cpu, len(run.accepted), TARGET_RATE),
        *count_rows(*run.counted, len(run.accepted)),
        *dbcost.rows(*driven.db_cost, len(run.accepted)),
        ("load (1 / 5 / 15 min)", f"start {driven.load_at_start}, end {load()}"),
    ], spent  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--rate", type=float, default=200.0, help="reports per second")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of sending")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between lag samples")
    parser.add_argument("--drain", type=float, default=120.0, help="most seconds to wait after")
    parser.add_argument(
        "--compare",
        type=Path,
        help="another checkout of gridloop (with its .venv): measured first, the same way",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run(args.rate, args.duration, args.sample, args.drain, args.compare)


if __name__ == "__main__":
    main()
