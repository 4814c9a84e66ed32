"""Prometheus metrics of the Kafka plumbing, shared by every service."""

from prometheus_client import Counter, Gauge, Histogram

CONSUMED = Counter(
    "gridloop_records_consumed_total", "Records consumed and handled", ["group", "topic"]
)
DEAD_LETTERED = Counter(
    "gridloop_records_dead_lettered_total", "Poison records sent to a DLQ", ["group", "topic"]
)
RETRIES = Counter(
    "gridloop_handler_retries_total", "Transient failures retried by a consumer", ["group"]
)
PRODUCED = Counter("gridloop_events_produced_total", "Events acknowledged by Kafka", ["topic"])
LAG = Gauge(
    "gridloop_consumer_lag",
    "Records on the topic not yet consumed by the group (high watermark - position)",
    ["group", "topic"],
)
HANDLE_SECONDS = Histogram(
    "gridloop_handle_seconds", "Time to handle one record, effects included", ["group"]
)
