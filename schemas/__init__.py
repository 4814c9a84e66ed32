"""The event contract of gridloop: every fact a service publishes, as pydantic v2 models.

Kafka records are CloudEvents 1.0 in binary mode (see `schemas.envelope`); the record value
is one of the data models below, the `ce_type` header names which.
"""

from schemas.envelope import Envelope, EnvelopeError, decode, encode
from schemas.events import EVENT_TYPES, CaseEvent, EventData, SlaEvent
from schemas.topics import TOPICS, Topic, dead_letter_topic

__all__ = [
    "EVENT_TYPES",
    "TOPICS",
    "CaseEvent",
    "Envelope",
    "EnvelopeError",
    "EventData",
    "SlaEvent",
    "Topic",
    "dead_letter_topic",
    "decode",
    "encode",
]
