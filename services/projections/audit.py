"""Every accepted action, as it went into the event log, copied into the audit trail
(`gridloop/audit.py`). Pure: no I/O.

The record's `_id` is the event's id, so delivering, replaying or rebuilding an event writes
the same record once. An event without an actor (an SLA fact: a clock, not a person) is no
one's action and is not copied.
"""

from __future__ import annotations

from schemas.envelope import Envelope
from schemas.events import CaseAnnotation, CaseEvent
from services.projections.core import Document


def audit_record(env: Envelope) -> Document | None:
    data = env.data
    if not isinstance(data, CaseEvent | CaseAnnotation):
        return None
    reason = getattr(data, "reason", None)
    return {
        "_id": env.id,
        "kind": "action",
        "at": env.time,
        "service": env.source.rsplit("/", 1)[-1],
        "actor": data.actor.model_dump(mode="json"),
        "action": env.type,
        "case_id": data.case_id,
        "case_version": data.version if isinstance(data, CaseEvent) else data.case_version,
        "reason": reason if isinstance(reason, str) else None,
    }
