"""The headers every dead letter carries, whoever gave up on the record (a pipeline or the
SLA engine): the record's own, then why, whence and who."""

from __future__ import annotations

from dataclasses import dataclass

from gridloop.kafka.deadletter import dead_letter_headers, reason_of
from schemas.envelope import EnvelopeError


@dataclass(frozen=True)
class Read:
    topic: str = "dispatches"
    partition: int = 3
    offset: int = 41
    key: bytes | None = b"C-1"
    value: bytes | None = b"{oops"
    headers: tuple[tuple[str, bytes], ...] = (("ce_type", b"x"),)


def test_a_dead_letter_keeps_its_headers_and_says_why_whence_and_who() -> None:
    reason = reason_of(EnvelopeError("missing header ce_id"))
    assert reason == "EnvelopeError: missing header ce_id"
    assert dead_letter_headers(Read(), reason, "sla") == [
        ("ce_type", b"x"),
        ("dlq_error", b"EnvelopeError: missing header ce_id"),
        ("dlq_topic", b"dispatches"),
        ("dlq_partition", b"3"),
        ("dlq_offset", b"41"),
        ("dlq_group", b"sla"),
    ]


def test_a_long_reason_is_cut_to_fit_a_header() -> None:
    assert len(reason_of(ValueError("x" * 10_000))) == 4000
