"""The workbench's pure decisions: which queue a case sits in, its traffic light, and how
its timeline reads. No HTTP, no database: the pages and the tests call these alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gridloop.access import Principal, Role
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


# What the command centre dispatches again: returned (回退) and reworked cases, and filed
# ones that automatic dispatch could not place.
REDISPATCH = (State.returned, State.rework, State.filed)
# The states from which the command centre may dispatch by hand (改派 included).
DISPATCHABLE = (State.filed, State.returned, State.rework, State.dispatched, State.parked)


def centre_actions(case: CaseRecord) -> tuple[str, ...]:
    """What the command centre's dispatcher may do on the case now: dispatch by hand. A
    pending request is the shift lead's to answer (its desk, `approvals.py`)."""
    return ("dispatch",) if case.state in DISPATCHABLE else ()


def who(entry: TimelineEntry) -> str:
    """Who did it, as the timeline shows it."""
    if entry.actor is None:
        return "—"
    return f"{entry.actor.role.value}: {entry.actor.id}"


# Each action's form fields, as the dispatch API names them (a department's, the centre's).
DEPARTMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "acknowledge": (),
    "handled": ("note",),
    "return": ("reason",),
}
CENTRE_FIELDS: dict[str, tuple[str, ...]] = {"dispatch": ("department", "reason")}


# The supervision centre's intake operator (受理员): file (立案) or void (作废) a report.
INTAKE_FIELDS: dict[str, tuple[str, ...]] = {"file": ("note",), "void": ("reason",)}
# The states in which a report awaits the intake operator's decision.
AWAITING_INTAKE = (State.reported, State.verified)


def fields(action: str) -> tuple[str, ...]:
    for table in (DEPARTMENT_FIELDS, CENTRE_FIELDS, INTAKE_FIELDS):
        if action in table:
            return table[action]
    return ()


def intake_actions(case: CaseRecord) -> tuple[str, ...]:
    return ("file", "void") if case.state in AWAITING_INTAKE else ()


@dataclass(frozen=True)
class Call:
    """An action as the API takes it: which service, the path, the JSON body."""

    service: str  # "dispatch" or "intake"
    path: str
    body: dict[str, str]


def call(who: Principal, case_id: str, action: str, form: Mapping[str, str]) -> Call | None:
    """The API call of `action` by `who` (None: not theirs to do). A blank optional field
    is left out, so the API's own default applies; a blank required one is sent, so the
    API refuses it beside its field."""
    person = who.person or who.subject
    if who.role is Role.department and who.department and action in DEPARTMENT_FIELDS:
        body = {"handler_id": person} | {f: form.get(f, "") for f in DEPARTMENT_FIELDS[action]}
        return Call("dispatch", f"/departments/{who.department}/cases/{case_id}/{action}", body)
    if who.role is Role.command_centre and action in CENTRE_FIELDS:
        given = {f: form[f] for f in CENTRE_FIELDS[action] if form.get(f)}
        given.setdefault("reason", "")  # a dispatch's reason is required
        return Call("dispatch", f"/cases/{case_id}/{action}", {"dispatcher": person} | given)
    if who.role is Role.supervision_centre and action in INTAKE_FIELDS:
        given = {f: form[f] for f in INTAKE_FIELDS[action] if form.get(f)}
        if action == "void":
            given.setdefault("reason", "")
        return Call("intake", f"/cases/{case_id}/{action}", given)
    return None
