"""Growth: what a report, a case and a score recompute cost as the stored history grows
(issue 20, item 4: each within 20 % of the smallest size).

    python -m bench.bench_growth [--sizes 10000,100000,300000] [--rate 20] [--duration 60]
                                 [--changed 200] [--this-month 3000] [--cache 8G]

The real system as `bench.bench_e2e` starts it (projections, dispatch, notify, sla and
intake, each its own process, on the embedded Tansu and SecantusDB, or
KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI; SecantusDB's WiredTiger cache as large as MongoDB
takes by default on the machine, half of its memory less 1 GiB, not SecantusDB's own 1G,
which a history of millions of cases outgrows), with its pack (webhooks to this process, no
duplicate radius). The system starts once on the empty database (its services create their
indexes, as on a city's first day); then, for each size in turn, it is stopped, the
history grown to that size (`bench.history`: copies of cases the services' own code wrote,
in every collection a service reads per case and in the topics, the consumer groups moved
past them), the system started again, and measured:

- the duplicate search intake makes for a report (`DuplicateSearch`, one report at a
  time): the cases its query returns, and its time;
- reports at `--rate` for `--duration` s, sent and timed as `bench.bench_e2e` does: intake's
  CPU a report, the CPU a case of every process, p50 and p99 from the 202 to the webhook;
- a score recompute: `--changed` of this month's closed cases rated by their residents (a
  `feedback` event each through `ScoreStore.apply_many`), then `ScoreStore.recompute_dirty`
  until nothing is pending: its seconds, and ms a changed case.

This month's cases (`--this-month`) are loaded with the first size and are the same at
every size: what grows is the past months' closed cases, as a city's history grows. Each
figure is shown with its ratio to the smallest size's: ✔ within 20 %, ✘ beyond.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench.bench_e2e import SERVICES, WARM, Driven, drive, write_pack
from bench.bench_intake import issue_token, reports
from bench.history import History, Loaded, Shape, templates
from bench.servers import (
    NAMESPACE,
    Servers,
    load,
    machine,
    mongodb_cache,
    quantiles,
    servers,
    system_env,
)
from gridloop import embedded
from gridloop.cases.reader import Candidate, CaseReader
from gridloop.citypack import CityPack, load_city_pack
from gridloop.kafka import ensure_topics
from gridloop.lifecycle import OPEN_STATES
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import Actor, CaseReported, FeedbackGiven, Role
from services.evaluation.store import ScoreStore
from services.intake.search import DuplicateSearch
from system.up import System

FLAT = 1.2  # issue 20: within 20 % of the smallest size
SOURCE = "/gridloop/bench/growth"
RESIDENT = Actor(role=Role.citizen, id="resident")
SUPERVISOR = {"role": "supervisor", "id": "SUP-0001"}
SEARCHES = 50  # reports searched one at a time at each size
STORED = "H"  # the stored history's case ids (`bench.history.copy_id`)
POLL = 500  # events an apply_many, as the evaluation service applies a poll


@dataclass
class Recomputed:
    changed: int
    marked: int  # cases pending after the ratings (each changed case once)
    seconds: float
    rounds: int


@dataclass(frozen=True)
class Searched:
    """A duplicate search of one report: the cases its query returned (ended ones are no
    duplicate's: what it reads of the history), and its time."""

    ended: float
    open: float  # the history's (this month's stored cases)
    own: float  # the bench's own reports of the sizes before, open still (dispatched)
    ms: float
    open_cases: int  # in the database: the history's and the bench's own, of every size


@dataclass
class Measured:
    """One size's figures."""

    size: int
    loaded: Loaded
    start_seconds: float
    searched: Searched
    driven: Driven
    recomputed: Recomputed
    states: dict[str, int] = field(default_factory=dict)


class CountingReader(CaseReader):
    """The case reader intake's duplicate search uses, counting the cases it returns, ended
    and open."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        super().__init__(db)
        self.ended = self.open = self.own = 0

    async def near(self, keys: Sequence[str], limit: int) -> list[Candidate]:
        found = await super().near(keys, limit)
        opened = [c for c in found if c.state in OPEN_STATES]
        own = sum(1 for c in opened if not c.case_id.startswith(STORED))
        self.open += len(opened) - own
        self.own += own
        self.ended += len(found) - len(opened)
        return found


def reported(pack: CityPack, body: dict[str, Any], n: int) -> CaseReported:
    """A report's first event, as intake decides it (what its duplicate search reads)."""
    grid = pack.locate(body["point"]["lon"], body["point"]["lat"])
    assert grid is not None
    first = {"case_id": f"PROBE-{n}", "version": 1, "grid_code": grid.code, "actor": SUPERVISOR}
    return CaseReported.model_validate(body | first)


async def search(uri: str, database: str, pack: CityPack, probes: list[CaseReported]) -> Searched:
    """A duplicate search of each report, one at a time: cases read, ms, on average."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
    try:
        reader = CountingReader(client[database])
        searcher = DuplicateSearch(reader, pack, lambda: datetime.now(UTC))
        await searcher.many(probes[:1])  # a connection, as intake has one
        reader.ended = reader.open = reader.own = 0
        started = time.perf_counter()
        for probe in probes:
            await searcher.many([probe])
        seconds = time.perf_counter() - started
        cases = client[database]["cases"]
        opened = sum([await cases.count_documents({"state": s.value}) for s in OPEN_STATES])
    finally:
        await client.close()
    n = len(probes)
    return Searched(reader.ended / n, reader.open / n, reader.own / n, seconds / n * 1e3, opened)


async def recompute(
    uri: str, database: str, pack: CityPack, cases: list[tuple[str, int]]
) -> Recomputed:
    """`cases` rated by their residents through the evaluation store, then their scores
    recomputed until none is pending."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
    try:
        store = ScoreStore(client[database], pack)
        now = datetime.now(UTC)
        rated = [
            Envelope(FeedbackGiven(case_id=c, version=v + 1, actor=RESIDENT, rating=2), SOURCE, now)
            for c, v in cases
        ]
        for start in range(0, len(rated), POLL):
            await store.apply_many(rated[start : start + POLL])
        marked = await store.pending()
        started, rounds = time.perf_counter(), 0
        while await store.pending():
            await store.recompute_dirty()
            rounds += 1
        return Recomputed(len(cases), marked, time.perf_counter() - started, rounds)
    finally:
        await client.close()


async def score_indexes(uri: str, database: str, pack: CityPack) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
    try:
        await ScoreStore(client[database], pack).create_indexes()
    finally:
        await client.close()


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


@dataclass
class Bench:
    """The system, its servers and its history, and what each size measured."""

    args: argparse.Namespace
    s: Servers
    system: System
    token: str
    database: str
    pack: CityPack
    hooks: int
    history: History
    measured: list[Measured] = field(default_factory=list)

    def size(self, size: int) -> None:
        """Grow the history to `size` (the system stopped), start the system, measure."""
        print(f"… growing the history to {size:,} cases (load {load()})", flush=True)
        grown = self.history.grow(size, self.s.mongodb, self.database, self.s.kafka)
        loaded = asyncio.run(grown)
        print(f"  {loaded.cases:,} cases in {loaded.seconds:.0f} s ({loaded.rate:,.0f}/s)")
        up = timed(self.system.start)
        print(f"  system up in {up:.1f} s (load {load()})", flush=True)
        try:
            searched, driven = self.reports()
            recomputed = self.recompute()
        finally:
            self.system.stop()
        states = dict(self.history.states)
        self.measured.append(Measured(size, loaded, up, searched, driven, recomputed, states))

    def reports(self) -> tuple[Searched, Driven]:
        """The search of a report, then reports at the rate, as bench_e2e sends them."""
        # Reports of their own at each size: the same points again would be merged into
        # the open cases the size before left there (no radius: the same point merges).
        count = int(self.args.rate * self.args.duration) + WARM
        found = reports(self.pack, count, seed=len(self.measured) + 5)
        probes = [reported(self.pack, b, n) for n, b in enumerate(found[:SEARCHES])]
        searched = asyncio.run(search(self.s.mongodb, self.database, self.pack, probes))
        bodies = [json.dumps(b).encode() for b in found]
        sampling = (5.0, self.args.drain)
        driven = drive(
            self.system, self.token, bodies, self.args.rate, sampling, self.hooks, self.s
        )
        return searched, driven

    def recompute(self) -> Recomputed:
        """Cases of this month not rated at a smaller size, rated and scored again."""
        skip = len(self.measured) * self.args.changed
        rated = self.history.of_this_month("closed", self.args.changed, skip)
        print(f"  recomputing after {len(rated)} ratings (load {load()})", flush=True)
        return asyncio.run(recompute(self.s.mongodb, self.database, self.pack, rated))


def build(args: argparse.Namespace, s: Servers, work: Path) -> Bench:
    """The system on `s` with bench_e2e's pack, started once on the empty database and
    stopped; the history's templates."""
    hooks = embedded.free_port()
    pack_dir = write_pack(work / "citypack", hooks)
    pack = load_city_pack(pack_dir)
    asyncio.run(ensure_topics(s.kafka, namespace=NAMESPACE))
    env, database = system_env(s, work / "data", SERVICES, pack_dir)
    token = asyncio.run(issue_token(s.mongodb, database))
    system = System(env, work / "logs", SERVICES)
    print(f"… the system's first start, on an empty database (load {load()})", flush=True)
    system.start()
    system.stop()
    # The evaluation service is not among the system's (bench_e2e's); its indexes are
    # made as it makes them at its first start, or its recompute would scan its cases.
    asyncio.run(score_indexes(s.mongodb, database, pack))
    shape = Shape(this_month=args.this_month)
    print(f"… templates (load {load()})", flush=True)
    started = time.perf_counter()
    past, current = asyncio.run(templates(s.mongodb, pack, datetime.now(UTC), shape))
    print(f"  {len(past):,} + {len(current):,} in {time.perf_counter() - started:.0f} s")
    history = History(pack, past, current, shape)
    return Bench(args, s, system, token, database, pack, hooks, history)


# --- the table ---------------------------------------------------------------------------------

Figure = Callable[[Measured], float]


def figures(measured: list[Measured]) -> dict[str, Figure]:
    """What is compared across sizes, each a cost: lower is better."""
    processes = sorted({p for m in measured for p in m.driven.cpu})

    def cpu(process: str) -> Figure:
        return lambda m: m.driven.cpu.get(process, 0.0) / accepted(m) * 1e3

    return {
        "loading, ms a case (the loader's)": lambda m: m.loaded.seconds / m.loaded.cases * 1e3,
        "system start, s": lambda m: m.start_seconds,
        "duplicate search: ended cases read a report": lambda m: m.searched.ended,
        "duplicate search: the history's open cases read a report": lambda m: m.searched.open,
        # Not the history: the bench's reports of the sizes before stay open (dispatched),
        # all in one box of 770 × 210 m, so each size's search finds more of them.
        "duplicate search: the bench's earlier reports read a report": lambda m: m.searched.own,
        "duplicate search: ms a report": lambda m: m.searched.ms,
        "intake CPU, ms a report": cpu("intake"),
        "CPU a case, all processes, ms": lambda m: sum(m.driven.cpu.values()) / accepted(m) * 1e3,
        **{f"CPU a case: {p}, ms": cpu(p) for p in processes},
        "report → webhook p50, ms": lambda m: quantiles(m.driven.delays())[0] * 1e3,
        "report → webhook p99, ms": lambda m: quantiles(m.driven.delays())[1] * 1e3,
        "score recompute, s": lambda m: m.recomputed.seconds,
        "score recompute, ms a changed case": lambda m: (
            m.recomputed.seconds / max(m.recomputed.changed, 1) * 1e3
        ),
    }


def accepted(m: Measured) -> int:
    return max(len(m.driven.run.accepted), 1)


def cell(value: float, base: float | None) -> str:
    shown = f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    if base is None:
        return shown
    ratio = value / base if base else (1.0 if value == base else float("inf"))
    return f"{shown} ({ratio:.2f} {'✔' if ratio <= FLAT else '✘'})"


def table(measured: list[Measured]) -> list[str]:
    """The figures by size, as a Markdown table; each beside its ratio to the smallest."""
    lines = [
        "| cases stored | " + " | ".join(f"{m.size:,}" for m in measured) + " |",
        "|---|" + "---|" * len(measured),
    ]
    for name, figure in figures(measured).items():
        base = figure(measured[0])
        cells = [cell(figure(m), None if i == 0 else base) for i, m in enumerate(measured)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def notes(measured: list[Measured]) -> list[str]:
    """What each size loaded and what each run saw, beside the table."""
    lines = []
    for m in measured:
        run, recomputed = m.driven.run, m.recomputed
        missing = len(run.accepted) - len(m.driven.delays())
        docs = ", ".join(f"{k} {v:,}" for k, v in sorted(m.loaded.documents.items()))
        lines += [
            f"- {m.size:,}: loaded {m.loaded.cases:,} cases in {m.loaded.seconds:.0f} s "
            f"({m.loaded.rate:,.0f}/s; {docs}; {m.loaded.records:,} records; groups moved "
            f"in {m.loaded.offsets_seconds:.1f} s); stored by state: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(m.states.items())),
            f"  open cases before the reports {m.searched.open_cases:,}; "
            f"reports accepted {len(run.accepted):,}, refused {run.refused or 'none'}, "
            f"no webhook {missing}; recompute: {recomputed.marked} marked, "
            f"{recomputed.rounds} rounds; load at the start {m.driven.load_at_start}",
        ]
    return lines


def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-growth-"))
    started = time.perf_counter()
    header = [f"machine: {machine()}", f"date: {datetime.now(UTC).isoformat(timespec='minutes')}"]
    header.append(f"load at the start: {load()}")
    header.append(f"SecantusDB's cache: {args.cache}")
    with servers(work, cache=args.cache) as s:
        bench = build(args, s, work)
        try:
            for size in args.sizes:
                bench.size(size)
                # So far, as each size ends: a run stopped later keeps these.
                print("\n".join(["", *table(bench.measured), *notes(bench.measured)[-2:]]))
        finally:
            bench.system.stop()
    header.append(f"load at the end: {load()}; the whole run {time.perf_counter() - started:.0f} s")
    print()
    print("\n".join([*header, "", *table(bench.measured), "", *notes(bench.measured)]))
    if args.keep:
        print(f"the servers' and services' logs: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def sizes(text: str) -> list[int]:
    found = [int(x) for x in text.split(",")]
    if found != sorted(found) or len(set(found)) != len(found):
        raise argparse.ArgumentTypeError("sizes grow: each larger than the one before")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--sizes", type=sizes, default=[10_000, 100_000, 300_000])
    parser.add_argument("--rate", type=float, default=20.0, help="reports per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    parser.add_argument("--drain", type=float, default=60.0, help="most seconds to wait after")
    parser.add_argument("--changed", type=int, default=200, help="cases rated, then rescored")
    parser.add_argument("--this-month", type=int, default=3_000, help="this month's cases")
    parser.add_argument(
        "--cache",
        default=mongodb_cache(),
        help="the embedded SecantusDB's WiredTiger cache (default: MongoDB's on this machine)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs (and the data)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run(args)


if __name__ == "__main__":
    main()
