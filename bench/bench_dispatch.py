"""Dispatch: its reaction to filings, and the departments' callbacks, on one worker.

    python -m bench.bench_dispatch [--cases 3000] [--concurrency 32] [--compare CHECKOUT]

The services as `gridloop up` runs them (intake, projections, dispatch; each its own
process) on the embedded broker and database (or KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI):

1. `--cases` supervisor reports go in through intake's batch endpoint (filed at once by the
   demo pack's rule) while dispatch is stopped; then dispatch starts, and the bench times
   its reaction: from the first case dispatched to the last, with dispatch's CPU a case.
2. Each case's department reports it handled (`POST /departments/{code}/cases/{id}/handled`,
   `--concurrency` requests in flight): the rate, the latency and dispatch's CPU a request.

`--compare` runs the same, first, with another checkout's services (its own `.venv`), each
version on servers started afresh: before and after in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient

from bench.bench_e2e import write_pack
from bench.bench_intake import reports
from bench.servers import (
    NAMESPACE,
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
from gridloop.auth import CredentialStore, Role
from gridloop.citypack import load_city_pack
from gridloop.kafka import ensure_topics
from gridloop.mongo import Document
from system.up import System

BATCH = 500


async def tokens(mongodb: str, database: str, departments: list[str]) -> dict[str, str]:
    """A supervisor's token, and one for each department."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb)
    try:
        store = CredentialStore(client[database])
        found = {"supervisor": await store.issue(Role.supervisor, "SUP-0001", "bench")}
        for code in departments:
            found[code] = await store.issue(Role.department, code, "bench")
        return found
    finally:
        await client.close()


async def dispatched(mongodb: str, database: str) -> dict[str, str]:
    """The cases the projection shows dispatched, with their department."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb, tz_aware=True)
    try:
        found = client[database]["cases"].find({"state": "dispatched"}, {"department": 1})
        return {d["_id"]: d["department"] async for d in found}
    finally:
        await client.close()


async def operations(mongodb: str) -> dict[str, int]:
    """The database's operation counters (`serverStatus`): inserts, queries, updates, …"""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb)
    try:
        counters: dict[str, int] = (await client.admin.command("serverStatus"))["opcounters"]
        return counters
    finally:
        await client.close()


def per(before: dict[str, int], after: dict[str, int], n: int) -> str:
    """Operations a case or request, by kind: what the database was asked."""
    return ", ".join(
        f"{kind} {(after[kind] - before.get(kind, 0)) / max(n, 1):.2f}"
        for kind in after
        if after[kind] != before.get(kind, 0)
    )


async def seed(url: str, token: str, bodies: list[dict[str, Any]]) -> int:
    """Every report through the batch endpoint; how many were accepted."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    accepted = 0
    async with aiohttp.ClientSession() as http:
        for i in range(0, len(bodies), BATCH):
            chunk = json.dumps(bodies[i : i + BATCH]).encode()
            async with http.post(f"{url}/reports/batch", data=chunk, headers=headers) as answer:
                if answer.status == 202:
                    accepted += len((await answer.json())["accepted"])
    return accepted


def react(
    system: System, where: tuple[str, str], cases: int, db: int | None
) -> list[tuple[str, str]]:
    """Start dispatch on the filed cases; time its reaction to them."""
    system.start_service("dispatch", 120)
    pid = system.processes["dispatch"].proc.pid  # type: ignore[union-attr]
    cpu, first, count = cpu_seconds(pid), 0.0, 0
    db_cpu = cpu_seconds(db) if db else 0.0
    started = time.monotonic()
    while count < cases and time.monotonic() - started < 600:
        count = len(asyncio.run(dispatched(*where)))
        if count and not first:
            first = time.monotonic()
        time.sleep(0.2)
    took = time.monotonic() - (first or started)
    spent = cpu_seconds(pid) - cpu
    rows = [
        ("dispatch's reaction", f"{count:,} of {cases:,} dispatched in {took:,.1f} s: "
                                f"{count / took:,.0f} cases/s (load {load()})"),
        ("  dispatch's CPU a case", f"{spent / max(count, 1) * 1e6:,.0f} µs"),
    ]  # fmt: skip
    if db:  # the database serves the projection's writes too, while dispatch reacts
        spent = cpu_seconds(db) - db_cpu
        rows.append(("  the database's CPU a case", f"{spent / max(count, 1) * 1e6:,.0f} µs"))
    return rows


def callbacks(
    system: System,
    codes: dict[str, str],
    keys: dict[str, str],
    concurrency: int,
    db: int | None,
    mongodb: str,
) -> list[tuple[str, str]]:
    """Each case reported handled by its department, `concurrency` in flight."""
    pid = system.processes["dispatch"].proc.pid  # type: ignore[union-attr]
    db_cpu = cpu_seconds(db) if db else 0.0
    url = system.url("dispatch")
    requests = [
        (f"{url}/departments/{code}/cases/{case_id}/handled", keys[code])
        for case_id, code in codes.items()
    ]
    cpu, counted = cpu_seconds(pid), asyncio.run(operations(mongodb))
    took, latencies, statuses = asyncio.run(_post_each(requests, concurrency))
    spent = cpu_seconds(pid) - cpu
    ops = per(counted, asyncio.run(operations(mongodb)), len(requests))
    p50, p99, _ = quantiles(latencies)
    rows = [
        (f"handled, {concurrency} in flight", f"{len(requests) / took:,.0f} requests/s "
                                             f"(load {load()})"),
        ("  latency", f"p50 {p50 * 1e3:,.1f} ms, p99 {p99 * 1e3:,.1f} ms; answers {statuses}"),
        ("  dispatch's CPU a request", f"{spent / max(len(requests), 1) * 1e6:,.0f} µs"),
        ("  database operations a request", ops),
    ]  # fmt: skip
    if db:  # the projection's writes of the handled events included
        spent = cpu_seconds(db) - db_cpu
        rows.append(("  the database's CPU a request", f"{spent / len(requests) * 1e6:,.0f} µs"))
    return rows


async def _post_each(
    requests: list[tuple[str, str]], concurrency: int
) -> tuple[float, list[float], dict[int, int]]:
    """Each (url, token) posted a handled note, `concurrency` in flight: the seconds it took,
    each request's latency, the answers by status."""
    body = json.dumps({"handler_id": "crew-1", "note": "handled"}).encode()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client() -> None:
            for url, token in queue:
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                at = time.perf_counter()
                async with http.post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    statuses[answer.status] = statuses.get(answer.status, 0) + 1
                latencies.append(time.perf_counter() - at)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, statuses


def version(
    work: Path, checkout: Path | None, bodies: list[dict[str, Any]], concurrency: int
) -> list[tuple[str, str]]:
    """Both phases on servers of their own, with `checkout`'s services (None: ours)."""
    pack = write_pack(work / "citypack", embedded.free_port())
    departments = sorted(load_city_pack(pack).departments)
    with servers(work) as s:
        asyncio.run(ensure_topics(s.kafka, namespace=NAMESPACE))
        services = ("intake", "projections", "dispatch")
        env, database = system_env(s, work / "data", services, pack)
        keys = asyncio.run(tokens(s.mongodb, database, departments))
        system = System(env, work / "logs", ("projections", "intake"), launcher=launcher(checkout))
        system.start()
        try:
            print(f"… seeding {len(bodies):,} reports (load {load()})", flush=True)
            cases = asyncio.run(seed(system.url("intake"), keys["supervisor"], bodies))
            db = s.pids.get("secantusdb") or s.pids.get("mongodb")
            rows = react(system, (s.mongodb, database), cases, db)
            codes = asyncio.run(dispatched(s.mongodb, database))
            print(f"… {len(codes):,} departments' callbacks (load {load()})", flush=True)
            return rows + callbacks(system, codes, keys, concurrency, db, s.mongodb)
        finally:
            system.stop()


def run(cases: int, concurrency: int, compare: Path | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    pack = write_pack(work / "pack", embedded.free_port())
    bodies = reports(load_city_pack(pack), cases, seed=11)
    rows = [("machine", machine()), ("date", datetime.now(UTC).isoformat(timespec="minutes"))]
    for name, checkout in ([("before", compare)] if compare else []) + [("this version", None)]:
        rows.append((f"— {name}", str(checkout or Path.cwd())))
        rows += version(work / name.replace(" ", "-"), checkout, bodies, concurrency)
    print()
    table(rows)
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--cases", type=int, default=3_000, help="reports to dispatch")
    parser.add_argument("--concurrency", type=int, default=32, help="callbacks in flight")
    parser.add_argument("--compare", type=Path, help="another checkout (with its .venv)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run(args.cases, args.concurrency, args.compare)


if __name__ == "__main__":
    main()
