"""The topic registry: every topic the services use, with its partitions and configs.

Created explicitly at start-up (the embedded broker does not auto-create topics).
Keys are case ids, so partitions spread cases while keeping each case's events in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka.partitioner import murmur2


@dataclass(frozen=True)
class Topic:
    name: str
    purpose: str
    partitions: int = 6
    configs: dict[str, str] = field(default_factory=dict)


_KEEP = {"retention.ms": "-1", "cleanup.policy": "delete"}  # the event log is the record
_DLQ = {"retention.ms": str(30 * 24 * 3600 * 1000)}

REPORTS = Topic(
    "reports", "supervision centre: reported, filed, voided, merged, split, answered", 6, _KEEP
)
VERIFICATIONS = Topic(
    "verifications", "supervisors on site: verified (核实), checked (核查)", 6, _KEEP
)
DISPATCHES = Topic("dispatches", "command centre: dispatched, returned, extended, parked", 6, _KEEP)
COMPLETIONS = Topic("completions", "departments: handled, explained", 6, _KEEP)
CLOSURES = Topic("closures", "end of the loop: closed, rework, feedback, callbacks", 6, _KEEP)
SLA = Topic("sla", "deadlines: warning, breach, escalation", 6, _KEEP)

LIFECYCLE_TOPICS = (REPORTS, VERIFICATIONS, DISPATCHES, COMPLETIONS, CLOSURES, SLA)
# The grid's people (services/grid): staff spells and patrols, keyed by grid code.
GRID = Topic("grid", "the grid's people: staff assigned and released, patrols", 6, _KEEP)


def partition_of(case_id: str, partitions: int) -> int:
    """The partition of a case's records: what the producers' default partitioner picks for
    the key (murmur2, as Java clients do), so state keyed by case can be co-partitioned."""
    hashed: int = murmur2(case_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def dead_letter_topic(source: str) -> str:
    """Where a consumer parks a record of `source` it cannot process."""
    return f"{source}.dlq"


DEAD_LETTERS = tuple(
    Topic(dead_letter_topic(t.name), f"poison records of {t.name}", 1, _DLQ)
    for t in LIFECYCLE_TOPICS
)

TOPICS: dict[str, Topic] = {t.name: t for t in (*LIFECYCLE_TOPICS, *DEAD_LETTERS, GRID)}

_TOPIC_OF_TYPE: dict[str, Topic] = {
    **{f"gridloop.case.{t}": REPORTS for t in ("reported", "filed", "voided", "merged", "split")},
    # A void request and its denial beside the void (the same topic and key: in order).
    **{f"gridloop.case.{t}": REPORTS for t in ("void_requested", "void_denied")},
    "gridloop.case.answered": REPORTS,
    # 自处置: beside its report (the same topic and key: in order after it).
    "gridloop.case.self_handled": REPORTS,
    **{f"gridloop.case.{t}": VERIFICATIONS for t in ("verified", "checked")},
    **{
        f"gridloop.case.{t}": DISPATCHES
        for t in ("dispatched", "returned", "extended", "parked", "resumed")
    },
    "gridloop.case.handled": COMPLETIONS,
    "gridloop.case.explained": COMPLETIONS,
    "gridloop.case.acknowledged": COMPLETIONS,
    # Requests and their decisions share a topic (and key), so they stay in order.
    **{
        f"gridloop.case.{t}": DISPATCHES
        for t in (
            "extension_requested",
            "extension_denied",
            "parking_requested",
            "parking_denied",
            "return_requested",
            "return_denied",
            "resume_requested",
            "resume_denied",
            # 督办 and its reply: the shift lead's and the department's, in order.
            "urged",
            "urge_replied",
        )
    },
    **{f"gridloop.case.{t}": CLOSURES for t in ("closed", "rework", "feedback")},
    # 回访: the hotline's callbacks, beside the closure and the rating they lead to.
    **{f"gridloop.case.{t}": CLOSURES for t in ("callback_unreached", "callback_answered")},
    # Disputes: the tier offices' commands go through dispatch, in order on one topic.
    **{
        f"gridloop.case.{t}": DISPATCHES
        for t in ("dispute_escalated", "dispute_explained", "dispute_confirmed", "dispute_closed")
    },
    **{f"gridloop.sla.{t}": SLA for t in ("warning", "breach", "escalation")},
    **{
        f"gridloop.grid.{t}": GRID
        for t in ("staff_assigned", "staff_released", "patrol_started", "patrol_ended")
    },
    # Households and visits (走访): beside the grid's other facts, keyed by grid.
    **{
        f"gridloop.grid.{t}": GRID
        for t in ("visit_logged", "finding_reported", "household_changed")
    },
}


def topic_for(ce_type: str) -> str:
    """Each event type has one home topic, so producers never choose."""
    return _TOPIC_OF_TYPE[ce_type].name
