"""The wiring of the system, declared once: which service reads which topics under which
consumer group, and which topics it writes (the topics themselves, their events and
partitions are the contract's: `schemas.topics`).

Everything else follows from here: each service's main (`group`, `topics`), the topics
created at start-up (`gridloop.kafka.ensure_topics`), the SLA engine's faust app id, sources
and table, and the table of docs/architecture.md (tests/unit/test_topology.py compares it).

A namespace (`GRIDLOOP_NAMESPACE`, none by default) prefixes every topic, dead-letter and
faust topic included, and every consumer group, so that two systems share one broker
without reading each other's records: `named("ci7", "reports")` is `ci7.reports`. It lives
in the kernel, not the contract: the events and their home topics are the same in every
namespace; which service reads them, and under which group, is how one system is put
together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from schemas.topics import (
    CLOSURES,
    COMPLETIONS,
    DISPATCHES,
    GRID,
    LIFECYCLE_TOPICS,
    REPORTS,
    SLA,
    TOPICS,
    VERIFICATIONS,
    Topic,
    dead_letter_topic,
)

# One segment of a topic name: Kafka allows [A-Za-z0-9._-] in 249 characters; the dot is
# ours, between the namespace and the name.
NAMESPACE = re.compile(r"[A-Za-z0-9_-]{0,40}")


class BadNamespace(ValueError):
    """A namespace that cannot prefix a Kafka topic name."""


def check_namespace(namespace: str) -> str:
    if not NAMESPACE.fullmatch(namespace):
        raise BadNamespace(
            f"namespace {namespace[:50]!r}: at most 40 letters, digits, '_' or '-' (no dots)"
        )
    return namespace


def named(namespace: str, name: str) -> str:
    """A topic or consumer group as the broker knows it in `namespace`."""
    return f"{check_namespace(namespace)}.{name}" if namespace else name


@dataclass(frozen=True)
class Wiring:
    """One service's place on the log. `group` is None for a service that reads no topic."""

    service: str
    group: str | None
    consumes: tuple[Topic, ...]
    produces: tuple[Topic, ...]
    tables: tuple[str, ...] = ()  # faust tables, each with a changelog topic of its own

    @property
    def consumer_group(self) -> str:
        """Its consumer group (before any namespace); an error for a service that reads none."""
        if self.group is None:
            raise ValueError(f"{self.service} reads no topic")
        return self.group

    @property
    def topics(self) -> tuple[str, ...]:
        """The names of the topics it consumes (before any namespace)."""
        return tuple(t.name for t in self.consumes)

    @property
    def dead_letters(self) -> tuple[str, ...]:
        """Where it parks the records it cannot handle: one `.dlq` per topic it consumes."""
        return tuple(dead_letter_topic(t.name) for t in self.consumes)

    def changelogs(self) -> tuple[str, ...]:
        """The changelog topics of its tables (faust names them after the app id)."""
        return tuple(f"{self.group}-{table}-changelog" for table in self.tables)


INTAKE = Wiring("intake", None, (), (REPORTS, VERIFICATIONS, CLOSURES))
# Filings and reworks; the department callback API writes completions.
DISPATCH = Wiring("dispatch", "dispatch", (REPORTS, CLOSURES), (DISPATCHES, COMPLETIONS))
# Departments are told of dispatches and SLA facts; reporters of filings, dispatches,
# handlings and closures (`messages.yaml`).
NOTIFY = Wiring("notify", "notify", (REPORTS, DISPATCHES, COMPLETIONS, CLOSURES, SLA), ())
# The SLA engine does not read `sla`: it marks a warning or breach on its clocks once Kafka
# acknowledged it. The faust app id is its consumer group.
SLA_ENGINE = Wiring(
    "sla",
    "gridloop-sla",
    (REPORTS, VERIFICATIONS, DISPATCHES, COMPLETIONS, CLOSURES),
    (SLA,),
    tables=("clocks",),
)
PROJECTIONS = Wiring("projections", "projections", LIFECYCLE_TOPICS, ())
EVALUATION = Wiring("evaluation", "evaluation", LIFECYCLE_TOPICS, ())
# The grid's people (网格): its staff register and patrols; reads no topic yet.
GRID_SERVICE = Wiring("grid", None, (), (GRID,))

WIRING: dict[str, Wiring] = {
    w.service: w
    for w in (INTAKE, DISPATCH, NOTIFY, SLA_ENGINE, PROJECTIONS, EVALUATION, GRID_SERVICE)
}


def created_topics(wiring: Iterable[Wiring] = WIRING.values()) -> list[Topic]:
    """The topics to create before the services start: every topic a service reads or
    writes, and the dead-letter topic of each one read (faust creates its own changelogs)."""
    names: dict[str, None] = {}
    for w in wiring:
        for name in (*(t.name for t in (*w.produces, *w.consumes)), *w.dead_letters):
            names[name] = None
    return [TOPICS[name] for name in names]
