"""The workbench's pure decisions: which queue a case sits in, its traffic light, and how
its timeline reads. No HTTP, no database: the pages and the tests call these alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gridloop.cases.lights import Light, light
from gridloop.cases.record import CaseRecord, TimelineEntry
from gridloop.lifecycle import State

# The states in which a case is on a department's desk, and those it has done with.
ON_DESK = (State.dispatched, State.parked)
DONE = (State.handled, State.closed)


class Queue(StrEnum):
    """A department's queues: 新派遣 (not yet acknowledged), 处理中, 挂账, 已办."""

    new = "new"
    working = "working"
    parked = "parked"
    done = "done"


@dataclass(frozen=True)
class Row:
    case: CaseRecord
    queue: Queue
    light: Light


def queue(case: CaseRecord, department: str) -> Queue:
    if case.state in DONE:
        return Queue.done
    if case.state is State.parked:
        return Queue.parked
    return Queue.working if case.acknowledged_by(department) else Queue.new


def rows(cases: Sequence[CaseRecord], department: str, now: datetime) -> list[Row]:
    """The department's cases, each in its queue with its light, reddest first."""
    order = {Light.red: 0, Light.yellow: 1, Light.green: 2}
    found = [Row(c, queue(c, department), light(c, now)) for c in cases]
    return sorted(found, key=lambda r: order[r.light])


def actions(case: CaseRecord, department: str) -> tuple[str, ...]:
    """What the department may do on the case now (the API decides; this only offers)."""
    if case.state is not State.dispatched:
        return ()
    if not case.acknowledged_by(department):
        return ("acknowledge", "return")
    lead = case.department == department
    return ("handled", "return") if lead else ()


def who(entry: TimelineEntry) -> str:
    """Who did it, as the timeline shows it."""
    if entry.actor is None:
        return "—"
    return f"{entry.actor.role.value}: {entry.actor.id}"
