"""The workbench with a city's open cases: each desk's page, beside the raw query behind it.

    python -m bench.bench_console [--open 50000] [--requests 200]

`--open` open cases are projected into a fresh database by the projections service's own
store (with its indexes), in the states a working day leaves them: 2 % citizen reports
awaiting verification, 1 % supervisors' reports awaiting filing, 1 % filed or returned
cases awaiting dispatch (a centre drains that queue within the hour), and 96 % dispatched
across the demo pack's departments, a quarter of them to ROADS (the busiest desk, ≈ 12,000
cases) — half acknowledged; 3 % with an extension request waiting, 5 % parked, 10 %
handled; reported over the last five days, due 1–96 hours after, so that more than half
are overdue. Then the console runs as `gridloop up` runs it (its own process, on the
embedded broker and database, or KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI), and each role
signs in and loads its desk `--requests` times, one request after another, as a person
reloads a page: p50 and p95 of the page, and of the raw database queries that page makes
(`raw_queries`: the same filters, sorts and limits, with PyMongo, no decoding into
models, no HTML).
Target (issue 16): p95 ≤ 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from bench.servers import NAMESPACE, load, machine, servers, system_env, table
from gridloop.access import Role
from gridloop.cases.reader import DOTS, CaseReader
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import Settings
from gridloop.kafka import ensure_topics
from gridloop.mongo import Document
from gridloop.people import People
from schemas.envelope import Envelope
from schemas.events import EVENT_TYPES, CaseAnnotation, CaseEvent
from services.console.core import DONE, ON_DESK, REDISPATCH, ROWS
from services.console.screens import MAP_READ, OPEN
from services.projections.store import CaseStore
from system.up import System
from tests.samples import sample

PASSWORD = "bench-console-2026"
CHUNK = 1_000
TEMPLATES = 2_000  # cases projected event by event; the rest are their copies
MORE = ROWS * 4 * 4  # a queue's rows after "show more" twice (800: as many as it shows)
BUSIEST = "ROADS"  # the department holding a quarter of the dispatched cases
# The demo district (the pack's grids): where the loaded cases lie.
LON, LAT = (116.4000, 116.4080), (39.9200, 39.9209)


def event(ce_type: str, case_id: str, version: int, at: datetime, **data: Any) -> Envelope:
    """One event of the case at `version` (a state change's own version, or the version an
    annotation such as an acknowledgement is made on)."""
    model = EVENT_TYPES[ce_type]
    key = "case_version" if issubclass(model, CaseAnnotation) else "version"
    assert issubclass(model, CaseEvent | CaseAnnotation)
    return Envelope(sample(ce_type, case_id=case_id, **{key: version}, **data), "/bench", at)


def history(n: int, pack: CityPack, rng: random.Random, now: datetime) -> list[Envelope]:
    """The events of the n-th open case: where the day left it, drawn at random."""
    case_id = f"B-{n:07d}"
    at = now - timedelta(minutes=rng.randrange(10, 5 * 24 * 60))
    lon, lat = rng.uniform(*LON), rng.uniform(*LAT)
    grid = pack.locate(lon, lat) or pack.grids[0]
    kind, code = rng.choice(sorted(pack.classes))
    place = {"point": {"lon": lon, "lat": lat}, "grid_code": grid.code}
    roll = rng.random()
    if roll < 0.02:  # a citizen's report, awaiting verification (核实)
        due = at + timedelta(hours=2)
        fields = {"channel": "website", "reporter": {}, "verifier": "SUP-0001"}
        return [event("gridloop.case.reported", case_id, 1, at, **place, **fields,
                      kind=kind, class_code=code, verification_due=due)]  # fmt: skip
    reported = event(
        "gridloop.case.reported", case_id, 1, at, **place, kind=kind, class_code=code,
        reporter={"id": "SUP-0001"},
    )  # fmt: skip
    if roll < 0.03:  # a supervisor's report, awaiting the filing decision (立案)
        return [reported]
    step = at + timedelta(minutes=5)
    filed = event("gridloop.case.filed", case_id, 2, step, kind=kind, class_code=code,
                  grid_code=grid.code)  # fmt: skip
    if roll < 0.035:  # filed, not placed by automatic dispatch
        return [reported, filed]
    departments = sorted(pack.departments)
    department = BUSIEST if rng.random() < 0.25 else rng.choice(departments)
    deadline = step + timedelta(hours=rng.uniform(1, 96))  # some past: overdue
    dispatched = event("gridloop.case.dispatched", case_id, 3, step, department=department,
                       deadline=deadline, rule=f"class {code} → {department}")  # fmt: skip
    found = [reported, filed, dispatched]
    if roll < 0.04:  # returned (回退): the command centre dispatches it again
        return [*found, event("gridloop.case.returned", case_id, 4, step, department=department)]
    if rng.random() < 0.5:
        found.append(event("gridloop.case.acknowledged", case_id, 3, step, department=department))
    if roll < 0.07:
        request = {"request_id": f"r-{n}", "deadline": deadline + timedelta(days=2)}
        found.append(event("gridloop.case.extension_requested", case_id, 3, step,
                           department=department, **request))  # fmt: skip
    elif roll < 0.12:
        found.append(event("gridloop.case.parked", case_id, 4, step))
    elif roll < 0.22:
        found.append(event("gridloop.case.handled", case_id, 4, step, department=department))
    return found


async def project(db: AsyncDatabase[Document], pack: CityPack, count: int) -> dict[str, int]:
    """`count` open cases, as the projections' store writes them: `TEMPLATES` cases are
    projected event by event (`CaseStore.apply_many`), and the rest are copies of those
    documents under new ids (inserted by thousands: the store's upserts would take an hour
    for 50,000 cases on this machine). Their states, counted."""
    store = CaseStore(db)
    await store.create_indexes()
    rng, now = random.Random(16), datetime.now(UTC)
    made = min(TEMPLATES, count)
    await store.apply_many([e for n in range(made) for e in history(n, pack, rng, now)])
    templates = await db["cases"].find({}).to_list()
    for first in range(made, count, CHUNK):
        copies = [templates[n % made] | {"_id": f"B-{n:07d}", "case_number": f"B{n:07d}"}
                  for n in range(first, min(first + CHUNK, count))]  # fmt: skip
        await db["cases"].insert_many(copies, ordered=False)
    states = await db["cases"].aggregate([{"$group": {"_id": "$state", "n": {"$sum": 1}}}])
    return {d["_id"]: d["n"] async for d in states}


async def signed_in(console: str, username: str) -> httpx.AsyncClient:
    """A client holding `username`'s session, signed in through the sign-in form."""
    client = httpx.AsyncClient(base_url=console, timeout=30.0)
    form = await client.get("/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert nonce, "no CSRF token on the sign-in page"
    data = {"username": username, "password": PASSWORD, "csrf": nonce.group(1)}
    answer = await client.post("/login", data=data)
    assert answer.status_code == 303, f"{username} not signed in: {answer.status_code}"
    return client


async def timings(times: int, work: Callable[[], Awaitable[Any]]) -> list[float]:
    """Milliseconds of each of `times` calls, one after another (after 5 not counted)."""
    for _ in range(5):
        await work()
    found = []
    for _ in range(times):
        started = time.perf_counter()
        await work()
        found.append((time.perf_counter() - started) * 1000)
    return found


def p50_p95(ms: list[float]) -> str:
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return f"p50 {cuts[49]:6.1f} ms  p95 {cuts[94]:6.1f} ms"


class Finds(monitoring.CommandListener):
    """The `find` commands a client sends: what a desk asks the database."""

    def __init__(self) -> None:
        self.seen: list[Document] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.seen.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def raw_queries(uri: str, database: str, rows: int = ROWS) -> dict[str, list[Document]]:
    """Each desk's `find` commands, as the console's reads (`CaseReader`, called as the
    desks call it, `rows` a queue) send them: the raw queries of the same pages."""
    finds = Finds()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        uri, tz_aware=True, event_listeners=[finds]
    )
    reader, now = CaseReader(client[database]), datetime.now(UTC)
    desks: dict[str, list[Callable[[], Awaitable[object]]]] = {
        "department": [lambda: reader.of_department(BUSIEST, (*ON_DESK, *DONE), rows, now)],
        "centre": [
            lambda: reader.in_states(REDISPATCH, rows),
            lambda: reader.with_pending_request(now, rows),
            lambda: reader.overdue(now, rows),
        ],
        "intake": [
            lambda: reader.awaiting_verification(None, rows),
            lambda: reader.awaiting_filing(rows),
        ],
        "shift lead": [
            lambda: reader.with_pending_request(now, rows),
            lambda: reader.urged(rows),
            lambda: reader.overdue(now, rows),
        ],
        "map, centre": [lambda: reader.open_cases(now, MAP_READ)],
        "map, department": [
            lambda: reader.of_department(BUSIEST, OPEN, MAP_READ, now, fields=DOTS)
        ],
    }
    found: dict[str, list[Document]] = {}
    try:
        for desk, reads in desks.items():
            finds.seen.clear()
            for read in reads:
                await read()
            found[desk] = list(finds.seen)
    finally:
        await client.close()
    return found


async def replay(db: AsyncDatabase[Document], finds: list[Document]) -> None:
    """The `find` commands again, each to its last document, nothing decoded into models."""
    for find in finds:
        cursor = db[find["find"]].find(find.get("filter", {}), find.get("projection"))
        if "sort" in find:
            cursor = cursor.sort(list(find["sort"].items()))
        await cursor.limit(find.get("limit", 0)).to_list()


async def measure(uri: str, database: str, console: str, times: int) -> list[tuple[str, str]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
    db = client[database]
    rows: list[tuple[str, str]] = []
    desks = {  # the person, and the page they load (its first page: `ROWS` a queue)
        "department": ("bench.roads", "/"),
        "centre": ("bench.centre", "/"),
        "intake": ("bench.intake", "/"),
        "shift lead": ("bench.lead", "/approvals"),
        "map, centre": ("bench.centre", "/map"),
        "map, department": ("bench.roads", "/map"),
        # "show more" twice: the longest page a person asks for
        f"department, {MORE} rows": ("bench.roads", f"/?rows={MORE}"),
        f"centre, {MORE} rows": ("bench.centre", f"/?rows={MORE}"),
    }
    queries = await raw_queries(uri, database)
    more = await raw_queries(uri, database, MORE)
    queries |= {f"{desk}, {MORE} rows": more[desk] for desk in ("department", "centre")}
    try:
        for desk, (username, path) in desks.items():
            session = await signed_in(console, username)
            try:
                page = await session.get(path)
                shown = page.text.count("data-case=")
                assert page.status_code == 200 and shown, f"{desk}: {page.status_code}, no rows"

                async def load_page(s: httpx.AsyncClient = session, at: str = path) -> None:
                    (await s.get(at)).raise_for_status()

                ms = await timings(times, load_page)
            finally:
                await session.aclose()
            rows.append((f"{desk} (page, {shown} rows)", f"{p50_p95(ms)}  (load {load()})"))

            async def raw(desk: str = desk) -> None:
                await replay(db, queries[desk])

            ms = await timings(times, raw)
            finds = len(queries[desk])
            rows.append((f"{desk} (raw, {finds} finds)", f"{p50_p95(ms)}  (load {load()})"))
    finally:
        await client.close()
    return rows


async def people(uri: str, database: str) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri)
    try:
        found = People(client[database])
        await found.create_indexes()
        await found.add("bench.roads", PASSWORD, Role.department, BUSIEST)
        await found.add("bench.centre", PASSWORD, Role.command_centre, "centre")
        await found.add("bench.intake", PASSWORD, Role.supervision_centre, "centre")
        await found.add("bench.lead", PASSWORD, Role.shift_lead, "centre")
    finally:
        await client.close()


async def loaded(uri: str, database: str, pack: CityPack, count: int) -> dict[str, int]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
    try:
        return await project(client[database], pack, count)
    finally:
        await client.close()


def run(count: int, times: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-console-"))
    pack = load_city_pack(Settings().city_pack)
    rows = [("machine", machine()), ("date", datetime.now(UTC).isoformat(timespec="minutes"))]
    with servers(work) as s:
        env, database = system_env(s, work, ("console", "dispatch", "intake"))
        asyncio.run(ensure_topics(s.kafka, namespace=NAMESPACE))
        started = time.perf_counter()
        states = asyncio.run(loaded(s.mongodb, database, pack, count))
        took = time.perf_counter() - started
        rows.append(("open cases", f"{sum(states.values()):,} in {took:.0f} s: " +
                     ", ".join(f"{k} {v:,}" for k, v in sorted(states.items()))))  # fmt: skip
        asyncio.run(people(s.mongodb, database))
        system = System(env, work / "logs", ("console",))
        try:
            system.start()
            rows += asyncio.run(measure(s.mongodb, database, system.url("console"), times))
        finally:
            system.stop()
    print()
    table(rows)
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--open", type=int, default=50_000, help="open cases in the database")
    parser.add_argument("--requests", type=int, default=200, help="page loads a desk")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run(args.open, args.requests)


if __name__ == "__main__":
    main()
