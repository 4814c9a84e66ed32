"""Prometheus metrics of the Kafka plumbing, shared by every service.

A family is exported by a process once it has something to measure, with every series it
knows of at 0 from then on: a consumer's (group, topic) as the pipeline is built
(`consuming`), a producer's topics as the service starts (`producing`). So a quiet service's
dashboard shows 0, not "no data", and a service that consumes nothing (intake) exports no
consumer families at all rather than empty ones.
"""

from collections.abc import Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

CONSUMED = Counter(
    "gridloop_records_consumed_total",
    "Records consumed and handled",
    ["group", "topic"],
    registry=None,
)
DEAD_LETTERED = Counter(
    "gridloop_records_dead_lettered_total",
    "Poison records sent to a DLQ",
    ["group", "topic"],
    registry=None,
)
RETRIES = Counter(
    "gridloop_handler_retries_total",
    "Transient failures retried by a consumer",
    ["group"],
    registry=None,
)
REBALANCED_COMMITS = Counter(
    "gridloop_commits_rebalanced_total",
    "Commits refused because a rebalance moved the partitions (handled again by their owner)",
    ["group"],
    registry=None,
)
PRODUCED = Counter(
    "gridloop_events_produced_total", "Events acknowledged by Kafka", ["topic"], registry=None
)
LAG = Gauge(
    "gridloop_consumer_lag",
    "Records on the topic not yet consumed by the group (high watermark - position)",
    ["group", "topic"],
    registry=None,
)
HANDLE_SECONDS = Histogram(
    "gridloop_handle_seconds",
    "Time to handle one record, effects included",
    ["group"],
    registry=None,
)

_exported: set[int] = set()


def export(*metrics: MetricWrapperBase) -> None:
    """Register `metrics` with the process's registry (once each)."""
    for metric in metrics:
        if id(metric) not in _exported:
            REGISTRY.register(metric)
            _exported.add(id(metric))


def consuming(group: str, topics: Iterable[str], handles: bool = True) -> None:
    """Series of a consumer group at 0: records consumed and dead-lettered, and its lag, per
    topic; with `handles` (a pipeline), its retries, handle time and commits a rebalance
    refused too."""
    export(CONSUMED, DEAD_LETTERED, LAG)
    for topic in topics:
        CONSUMED.labels(group, topic)
        DEAD_LETTERED.labels(group, topic)
        LAG.labels(group, topic)
    if handles:
        export(RETRIES, HANDLE_SECONDS, REBALANCED_COMMITS)
        RETRIES.labels(group)
        HANDLE_SECONDS.labels(group)
        REBALANCED_COMMITS.labels(group)


def producing(topics: Iterable[str]) -> None:
    """Series of the topics a service writes at 0 (its events, and its dead letters)."""
    export(PRODUCED)
    for topic in topics:
        PRODUCED.labels(topic)
