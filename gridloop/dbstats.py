"""Database commands counted by collection and command (issue 20: every millisecond named).

A PyMongo command listener, given to every client `gridloop.mongo.connect` makes: each
command a service sends is counted in `gridloop_db_commands_total{collection, command}` and
timed in `gridloop_db_command_seconds{command}`, so ops see which collection a service
leans on, and `bench.bench_e2e` divides the counts by the cases of a run to name the
database commands a case costs.

The listener runs on the driver's own path for every command, so it only counts and
times: a dictionary lookup and two metric updates, no logging.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram
from pymongo import monitoring

COMMANDS = Counter(
    "gridloop_db_commands_total",
    "Database commands sent, by collection and command (failed ones included)",
    ["collection", "command"],
)
FAILED = Counter("gridloop_db_commands_failed_total", "Database commands that failed", ["command"])
SECONDS = Histogram(
    "gridloop_db_command_seconds",
    "Round trip of a database command, as the driver measured it",
    ["command"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
# The commands a service sends in its work (not the driver's own handshakes and pings,
# which are counted too, under collection "-"); their series exist from start (a quiet
# service's dashboard is not empty).
WORK = ("find", "insert", "update", "delete", "findAndModify", "aggregate", "getMore")


def collection_of(command_name: str, command: Any) -> str:
    """The collection a command works on: named by its first field (`find: "cases"`), or
    by `collection` for a `getMore`; "-" for commands on no collection."""
    value = command.get("collection" if command_name == "getMore" else command_name)
    return value if isinstance(value, str) else "-"


class CommandStats(monitoring.CommandListener):
    def started(self, event: monitoring.CommandStartedEvent) -> None:
        COMMANDS.labels(collection_of(event.command_name, event.command), event.command_name).inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        SECONDS.labels(event.command_name).observe(event.duration_micros / 1e6)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        FAILED.labels(event.command_name).inc()
        SECONDS.labels(event.command_name).observe(event.duration_micros / 1e6)


def _sample_from_start() -> None:
    """Every family has its series from start (a quiet service's dashboard is not empty):
    the work commands at 0, their collections not known until they are sent, so at 0
    under "-" (no collection), where they stay."""
    for command in WORK:
        SECONDS.labels(command)
        FAILED.labels(command)
        COMMANDS.labels("-", command)


_sample_from_start()
LISTENER = CommandStats()
