"""The handheld's pure decisions: which tabs a person has, their tasks (核实, 核查) with
deadlines and lights, and the bodies the device's actions become at intake. No HTTP, no
database: the routes and the tests call these alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gridloop.access import Role
from gridloop.cases.lights import Light

# A task due within this is yellow: the time to walk there (a verification's limit is a
# couple of hours; the engine warns at the pack's share of it, `sla_light`).
SOON = timedelta(minutes=30)
# Who uses the handheld: supervisors (监督员) and the grid's staff (网格员).
HANDHELD_ROLES = frozenset({Role.supervisor, Role.grid_staff})


@dataclass(frozen=True)
class Tab:
    """A tab of the handheld: its name (the page's words `m.tab.<name>`), its page, who has
    it, and whether it is built yet."""

    name: str
    path: str
    roles: frozenset[Role]
    ready: bool = True


SUPERVISOR, STAFF = frozenset({Role.supervisor}), frozenset({Role.grid_staff})
EVERYONE = SUPERVISOR | STAFF
TABS: tuple[Tab, ...] = (
    Tab("tasks", "/m/", EVERYONE),  # 我的任务: 核实, 核查
    Tab("report", "/m/report", SUPERVISOR),  # 上报: photo, voice note, GPS point
    # The field tabs (issue 17), each its module, template and script: self-handling
    # (自处置, `selfhandling.py`), visits (走访, `visits.py`), patrol (巡查, `patrol.py`).
    Tab("selfhandling", "/m/selfhandling", EVERYONE),
    Tab("visits", "/m/visits", STAFF),
    Tab("patrol", "/m/patrol", EVERYONE),
    Tab("outbox", "/m/outbox", EVERYONE),  # 待发送: what waits on the device
)


def tabs(role: Role) -> list[Tab]:
    return [t for t in TABS if role in t.roles]


def due_light(
    due: datetime | None, now: datetime, warned: str | None = None, soon: timedelta = SOON
) -> Light:
    """A task's light: red once due, yellow when the SLA engine warned (`warned`: its light)
    or it is due within `soon`, green otherwise (and without a due time)."""
    if warned == "red" or (due is not None and due <= now):
        return Light.red
    if warned == "yellow" or (due is not None and due - now <= soon):
        return Light.yellow
    return Light.green


@dataclass(frozen=True)
class Task:
    """A task in the street: verify a report (核实) or check a handled case (核查)."""

    task: str  # "verification" | "check"
    case_id: str
    version: int
    kind: str | None  # the case's: event or component
    class_code: str | None
    description: str | None
    grid_code: str | None
    lon: float | None
    lat: float | None
    due: datetime | None
    light: Light
    case_number: str | None = None
    department: str | None = None  # a check: who handled it


def _at(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def tasks(task: str, found: Sequence[Mapping[str, Any]], now: datetime) -> list[Task]:
    """Intake's task list (`GET /tasks/verification`, `/tasks/check`) as the handheld
    shows it: reddest first, then soonest due."""
    order = {Light.red: 0, Light.yellow: 1, Light.green: 2}
    shown = []
    for t in found:
        point = (t.get("point") or {}).get("coordinates") or (None, None)
        due = _at(t.get("due"))
        shown.append(
            Task(
                task,
                str(t["case_id"]),
                int(t.get("version") or 0),
                t.get("kind"),
                t.get("class_code"),
                t.get("description"),
                t.get("grid_code"),
                point[0],
                point[1],
                due,
                due_light(due, now, t.get("sla_light")),
                t.get("case_number"),
                t.get("department"),
            )
        )
    far = datetime.max.replace(tzinfo=now.tzinfo)
    return sorted(shown, key=lambda s: (order[s.light], s.due or far))


# The channel a role reports through from the handheld. Grid staff report once intake
# takes their reports (their channel is the `selfhandling` and `visits` branches' to add).
CHANNELS: dict[Role, str] = {Role.supervisor: "supervisor"}
# What the device sends of a report; the rest (channel, reporter) the console adds.
REPORT_FIELDS = ("kind", "class_code", "description", "point", "media", "address", "urgency")
VERIFICATION_FIELDS = ("confirmed", "note", "media")
CHECK_FIELDS = ("passed", "note", "media")


def report_body(role: Role, subject: str, sent: Mapping[str, Any]) -> dict[str, Any] | None:
    """The report as intake takes it (`POST /reports`): the device's fields, through the
    role's channel, the reporter the person signed in; None for a role with no channel.
    Intake validates every field (and says which is wrong)."""
    channel = CHANNELS.get(role)
    if channel is None:
        return None
    body = {f: sent[f] for f in REPORT_FIELDS if sent.get(f) not in (None, "", [])}
    return body | {"channel": channel, "reporter": {"id": subject}}


def answer_body(fields: Sequence[str], sent: Mapping[str, Any]) -> dict[str, Any]:
    """A verification's or check's body (`POST /cases/{id}/verification|check`): the
    device's fields that intake names (a field it lacks intake refuses, beside it)."""
    return {f: sent[f] for f in fields if f in sent and sent[f] not in (None, "")}
