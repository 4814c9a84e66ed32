"""Deadline bookkeeping. Pure: a `Deadline` per case, events in, breaches out.

Events of one case reach the tracker through several topics whose relative order is not
guaranteed, so every change carries the case version and an older one never overrides a
newer one: a `handled` (v5) read before its `dispatched` (v4) still wins.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from schemas.events import (
    CaseDispatched,
    CaseEvent,
    CaseExtended,
    CaseResumed,
    SlaBreach,
    Stage,
)

RUNNING, STOPPED = "running", "stopped"


@dataclass(frozen=True)
class Deadline:
    """The handling clock of one case, as of `version`."""

    version: int
    status: str
    department: str = ""
    deadline: datetime | None = None
    dispatched_version: int = 0
    breached_version: int = 0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["deadline"] = self.deadline.isoformat() if self.deadline else None
        return d

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Deadline:
        raw = dict(raw)
        raw["deadline"] = datetime.fromisoformat(raw["deadline"]) if raw["deadline"] else None
        return cls(**raw)


def apply(current: Deadline | None, event: CaseEvent) -> Deadline | None:
    """The deadline after `event`; None when the event changes nothing."""
    if current is not None and event.version <= current.version:
        return None  # late or repeated
    if isinstance(event, CaseDispatched):
        return Deadline(
            event.version,
            RUNNING,
            event.department,
            event.deadline,
            event.version,
            current.breached_version if current else 0,
        )
    if isinstance(event, CaseExtended | CaseResumed) and current is not None:
        # TODO(issue 5): credit the parked time to the deadline on resume.
        deadline = event.deadline if isinstance(event, CaseExtended) else current.deadline
        return Deadline(
            event.version,
            RUNNING,
            current.department,
            deadline,
            current.dispatched_version,
            current.breached_version,
        )
    # Any other transition stops the handling clock (handled, returned, parked, closed, ...).
    if current is None:
        return Deadline(event.version, STOPPED)
    return Deadline(
        event.version,
        STOPPED,
        current.department,
        current.deadline,
        current.dispatched_version,
        current.breached_version,
    )


def breach(case_id: str, entry: Deadline, now: datetime) -> SlaBreach | None:
    """The breach due now (red is *over* 100 % of the limit), unless already recorded."""
    if entry.status != RUNNING or entry.deadline is None or now <= entry.deadline:
        return None
    if entry.breached_version >= entry.dispatched_version:
        return None
    return SlaBreach(
        case_id=case_id,
        case_version=entry.dispatched_version,
        stage=Stage.handle,
        department=entry.department,
        deadline=entry.deadline,
    )


def mark_breached(entry: Deadline, event: SlaBreach) -> Deadline:
    return Deadline(
        entry.version,
        entry.status,
        entry.department,
        entry.deadline,
        entry.dispatched_version,
        max(entry.breached_version, event.case_version),
    )
