"""What the intake, end-to-end and projections benchmarks share: the servers (external ones
from KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI, else the embedded ones started here), the
machine's description and its load, and quantiles."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gridloop import embedded
from gridloop.config import Settings
from gridloop.topology import named

# The namespace of the system a bench starts (GRIDLOOP_NAMESPACE, which the services it
# starts inherit): on a shared external broker, a bench then reads its own records alone.
NAMESPACE = Settings().namespace


def topic(name: str) -> str:
    """A topic of the bench's system as the broker names it."""
    return named(NAMESPACE, name)


def launcher(checkout: Path | None) -> tuple[str, ...]:
    """How to start the services of `checkout` (another version of gridloop with its own
    `.venv`, for a before/after in one run): its interpreter, and its entry module
    (`system` since the composition root left the kernel, `gridloop` before). None: ours."""
    if checkout is None:
        return (sys.executable, "-m", "system")
    python = str(checkout.resolve() / ".venv" / "bin" / "python")
    entry = "system" if (checkout / "system" / "cli.py").exists() else "gridloop"
    # -P: the working directory (this checkout) stays off the path; the other checkout's
    # own packages (its editable install) are the ones found.
    return (python, "-P", "-m", entry)


@dataclass(frozen=True)
class Servers:
    kafka: str
    mongodb: str
    pids: dict[str, int]  # the embedded servers' processes, by name (none for external ones)
    # Where the embedded database writes its CPU by command (`bench.dbcost`), if asked.
    db_cost: Path | None = None


@contextmanager
def servers(
    work: Path, need_kafka: bool = True, cache: str | None = None, db_cost: bool = False
) -> Iterator[Servers]:
    """The embedded servers (those not given by KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI);
    `cache` SecantusDB's WiredTiger cache (`embedded.secantus`); `db_cost`: SecantusDB
    counts its CPU by command (`bench.dbcost`)."""
    kafka, mongodb = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGODB_URI")
    cost = work / "db-cost.json" if db_cost and not mongodb else None
    started: list[embedded.ServerProcess] = []
    try:
        if not kafka and need_kafka:
            started.append(embedded.tansu(work))
            started[-1].start()
            kafka = embedded.kafka_bootstrap(started[-1])
        if not mongodb:
            started.append(embedded.secantus(work, cache=cache))
            if cost:  # the same server, started through the module that times it
                timing = [sys.executable, "-m", "bench.dbcost", str(cost)]
                started[-1].argv = timing + started[-1].argv[1:]
            started[-1].start()
            mongodb = embedded.mongodb_uri(started[-1])
        # "kafka (tansu)" → "tansu"
        pids = {s.name.split()[-1].strip("()"): s.proc.pid for s in started if s.proc}
        yield Servers(kafka or "", mongodb, pids, cost)
    finally:
        for server in reversed(started):
            server.stop()


def system_env(
    s: Servers, data_dir: Path, services: Iterable[str], pack: Path | None = None
) -> tuple[dict[str, str], str]:
    """The environment of a system a bench starts on `s`: a database of its own (its name
    is returned too), each of `services` on a free port, `pack` (None: the demo's), quiet
    logs."""
    database = f"bench_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka,
        "MONGODB_URI": s.mongodb,
        "GRIDLOOP_MONGODB_DATABASE": database,
        "GRIDLOOP_DATA_DIR": str(data_dir),
        "GRIDLOOP_LOG_LEVEL": "WARNING",
        **embedded.free_ports(f"GRIDLOOP_{n.upper()}_PORT" for n in services),
    }
    if pack is not None:
        env["GRIDLOOP_CITY_PACK"] = str(pack)
    return env, database


def machine() -> str:
    model = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {ram:.0f} GiB, Python {sys.version.split()[0]}"


def mongodb_cache() -> str:
    """The WiredTiger cache MongoDB would take on this machine by default: half of (RAM
    less 1 GiB), at least 256 MiB."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    return f"{max(256, int((ram - 1024) / 2))}M"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    """The load averages (1, 5, 15 min): other work on the machine disturbs the figures."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max."""
    if len(values) < 2:
        return (values[0],) * 3 if values else (float("nan"),) * 3
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98], max(values)


def table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}", flush=True)
