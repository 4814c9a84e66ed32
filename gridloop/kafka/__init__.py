"""Kafka plumbing, written once: topics, the producer, and the consume → handle → produce →
commit loop with dead-lettering and metrics. Services only write handlers."""

from gridloop.kafka.batch import BatchHandler, BatchPipeline
from gridloop.kafka.consumer import Handler, Pipeline, Poison, Retry
from gridloop.kafka.producer import EventProducer
from gridloop.kafka.topics import ensure_topics

__all__ = [
    "BatchHandler",
    "BatchPipeline",
    "EventProducer",
    "Handler",
    "Pipeline",
    "Poison",
    "Retry",
    "ensure_topics",
]
