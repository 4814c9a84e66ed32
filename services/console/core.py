"""The workbench's pure decisions: which queue a case sits in, its traffic light, and how
its timeline reads. No HTTP, no database: the pages and the tests call these alike."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, get_args
from zoneinfo import ZoneInfo

from gridloop.access import Principal, Role
from gridloop.cases.lights import Light, light
from gridloop.cases.record import CaseRecord, TimelineEntry
from gridloop.citypack import CityPack
from gridloop.citypack.disputes import office_code
from gridloop.citypack.owner import Routed, route
from gridloop.lifecycle import OPEN_STATES, State
from gridloop.nearby import box_around, keys_around, metres
from schemas.events import DisputeTier, Stage

# The states in which a case is on a department's desk, and those it has done with.
ON_DESK = (State.dispatched, State.parked)
DONE = (State.handled, State.closed)
# A desk shows the first ROWS cases of each queue (a page a person reads: the most urgent),
# and more when asked (`?rows=`), up to ROWS_MOST: a queue's read grows with what it shows.
ROWS = 50
ROWS_MOST = 800


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
    if case.state is State.parked:  # 挂账恢复: the lead resumes (or asks to, by the pack)
        mine = case.department == department and case.pending_request is None
        return ("resume",) if mine else ()
    if case.state is not State.dispatched:
        return ()
    if not case.acknowledged_by(department):
        return ("acknowledge", "return")
    if case.department != department:
        return ()
    # One request at a time awaits the command centre.
    asking = ("extension", "parking") if case.pending_request is None else ()
    return ("handled", "return", *asking)


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
    person = f" · {entry.actor.person}" if entry.actor.person else ""  # on a shared credential
    return f"{entry.actor.role.value}: {entry.actor.id}{person}"


# Each action's form fields, as the dispatch API names them (a department's, the centre's).
DEPARTMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "acknowledge": (),
    "handled": ("note", "photos"),  # photos: the after-photo's link (处置后照片)
    "return": ("reason",),
    "extension": ("deadline", "reason"),
    "parking": ("reason",),
    "resume": ("reason",),
}
CENTRE_FIELDS: dict[str, tuple[str, ...]] = {"dispatch": ("department", "assisting", "reason")}


# The supervision centre's intake operator (受理员): file (立案, in a corrected class if need
# be), void (作废) a report, or merge it into a similar open case nearby.
INTAKE_FIELDS: dict[str, tuple[str, ...]] = {
    "file": ("class_code", "note"),
    "void": ("reason",),
    "merge": ("into_case_id", "reason"),
    # 直接答复: a consultation answered from the knowledge base (`knowledge.py` shows it).
    "answer": ("knowledge_id", "note"),
}
# The states in which a report awaits the intake operator's decision.
AWAITING_INTAKE = (State.reported, State.verified)


def fields(action: str) -> tuple[str, ...]:
    for table in (DEPARTMENT_FIELDS, CENTRE_FIELDS, INTAKE_FIELDS):
        if action in table:
            return table[action]
    return ()


def intake_actions(case: CaseRecord, similar: Sequence[Similar] = ()) -> tuple[str, ...]:
    """What the intake operator may do on the report now: merge only into a similar case."""
    if case.state not in AWAITING_INTAKE:
        return ()
    return ("file", "void", "merge") if similar else ("file", "void")


@dataclass(frozen=True)
class Call:
    """An action as the API takes it: which service, the path, the JSON body."""

    service: str  # "dispatch" or "intake"
    path: str
    body: dict[str, Any]


def call(who: Principal, case_id: str, action: str, form: Mapping[str, str]) -> Call | None:
    """The API call of `action` by `who` (None: not theirs to do). A blank optional field
    is left out, so the API's own default applies; a blank required one is sent, so the
    API refuses it beside its field."""
    person = who.person or who.subject
    if who.role is Role.department and who.department and action in DEPARTMENT_FIELDS:
        body: dict[str, Any] = {"handler_id": person}
        body |= {f: form.get(f, "") for f in DEPARTMENT_FIELDS[action]}
        if "photos" in body:  # the uploaded after-photo's link, if one was sent
            body["photos"] = [body["photos"]] if body["photos"] else []
            body = body if body["photos"] else {k: v for k, v in body.items() if k != "photos"}
        return Call("dispatch", f"/department/cases/{case_id}/{action}", body)
    if who.role is Role.command_centre and action in CENTRE_FIELDS:
        given: dict[str, Any] = {f: form[f] for f in CENTRE_FIELDS[action] if form.get(f)}
        given.setdefault("reason", "")  # a dispatch's reason is required
        if "assisting" in given:  # the form's ticked departments, comma-joined
            given["assisting"] = [a for a in given["assisting"].split(",") if a]
        return Call("dispatch", f"/cases/{case_id}/{action}", {"dispatcher": person} | given)
    if who.role is Role.supervision_centre and action in INTAKE_FIELDS:
        given = {f: form[f] for f in INTAKE_FIELDS[action] if form.get(f)}
        if action == "void":
            given.setdefault("reason", "")
        if action == "merge":
            given.setdefault("into_case_id", "")
        if action == "answer":
            given.setdefault("knowledge_id", "")
        if corrected := given.pop("class_code", None):  # "kind:code", as the form offers
            kind, _, code = corrected.partition(":")
            given |= {"kind": kind, "class_code": code}
        return Call("intake", f"/cases/{case_id}/{action}", given)
    return None


# The fields a form's refusal may be shown beside; any other is shown beside the action.
FORM_FIELDS = frozenset(
    {
        "note",
        "reason",
        "department",
        "assisting",
        "into_case_id",
        "class_code",
        "deadline",
        "photos",
        "knowledge_id",  # the knowledge base's entry (knowledge.py)
        "message",  # 督办's (approvals.py)
        "reply",
    }
)
ALIASES = {"kind": "class_code", "file": "photos"}  # the API's field → the form's


def form_errors(problems: Sequence[Any]) -> dict[str, str]:
    """A refused case form's problems (FastAPI's or the API's `detail`), by the form field
    each names; the rest beside the action."""
    return errors_by_field(problems, FORM_FIELDS, ALIASES)


def errors_by_field(
    problems: Any,
    fields: Collection[str],
    aliases: Mapping[str, str] | None = None,
    missing: str | None = None,
) -> dict[str, str]:
    """A refusal's problems (a `detail` list: `loc`, `msg`, `type`) by the form field each
    names: the deepest part of a body `loc` that is one of `fields` (after `aliases`: the
    API's name → the form's), else beside the action. A field left blank (`type`
    `missing`) is said as `missing` when given: a choice has no text to echo."""
    errors: dict[str, str] = {}
    for problem in problems if isinstance(problems, list) else []:
        if not isinstance(problem, Mapping):
            continue
        loc = [str(part) for part in problem.get("loc") or []]
        named = [(aliases or {}).get(p, p) for p in loc[1:]] if loc[:1] == ["body"] else []
        name = next((part for part in reversed(named) if part in fields), "action")
        said = str(problem.get("msg", ""))
        if missing is not None and problem.get("type") == "missing":
            said = missing
        errors.setdefault(name, said)
    return errors


def form_values(body: Any) -> dict[str, str]:
    """What a refused form held (to show it again): its text fields only."""
    if not isinstance(body, Mapping):
        return {}
    return {str(k): v for k, v in body.items() if isinstance(v, str)}


# --- the intake operator's similar cases nearby (the duplicate search's candidates) ----------

# Open cases of the report's class this near are shown as similar: wider than a class's
# duplicate radius (a report that near was merged at once), for the operator to judge.
SIMILAR_RADIUS_M = 200.0


class Candidate(Protocol):
    """A case near the report, as the duplicate search reads it (`CaseReader.near`)."""

    @property
    def case_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def class_code(self) -> str: ...
    @property
    def state(self) -> State: ...
    @property
    def lon(self) -> float: ...
    @property
    def lat(self) -> float: ...
    @property
    def reported_at(self) -> datetime: ...


@dataclass(frozen=True)
class Similar:
    case_id: str
    metres: float
    state: State
    reported_at: datetime


def similar_keys(case: CaseRecord, radius_m: float = SIMILAR_RADIUS_M) -> list[str]:
    """The duplicate search's cell keys around the report (none without a point or class)."""
    if case.point is None or case.kind is None or case.class_code is None:
        return []
    lon, lat = case.point.coordinates
    return keys_around(case.kind, case.class_code, box_around(lon, lat, radius_m))


def similar(
    case: CaseRecord, candidates: Sequence[Candidate], radius_m: float = SIMILAR_RADIUS_M
) -> list[Similar]:
    """The open cases of the report's class within `radius_m` of it, nearest first: what it
    may be merged into."""
    if case.point is None:
        return []
    lon, lat = case.point.coordinates
    found = [
        Similar(c.case_id, metres(lon, lat, c.lon, c.lat), c.state, c.reported_at)
        for c in candidates
        if c.case_id != case.case_id
        and c.state in OPEN_STATES
        and (c.kind, c.class_code) == (case.kind, case.class_code)
    ]
    return sorted((s for s in found if s.metres <= radius_m), key=lambda s: s.metres)


# --- the dispatcher's suggestion and the escalations -----------------------------------------


def suggestion(pack: CityPack, case: CaseRecord) -> Routed | None:
    """Whom routing would dispatch the case to now, and why (`gridloop.citypack.owner`, the
    rules dispatch itself follows); None for a case not to dispatch."""
    kind, code = filed_class(case)
    if case.state not in DISPATCHABLE or not (kind and code and case.grid_code):
        return None
    point = case.point.point if case.point else None
    return route(pack, kind, code, case.grid_code, point, case.component_id)  # type: ignore[arg-type]


def filed_class(case: CaseRecord) -> tuple[str | None, str | None]:
    """The case's class: the filing's (the operator may have corrected the report's; the
    projection keeps the report's), else the report's."""
    for entry in reversed(case.timeline):
        if entry.type == "case.filed" and entry.data.get("class_code"):
            return entry.data.get("kind"), entry.data["class_code"]
    return case.kind, case.class_code


def escalated(case: CaseRecord) -> str | None:
    """The highest tier the case's handling deadline was escalated to (升级), if any: only
    an escalation of the deadline it has now counts."""
    clock = case.sla.get("handle")
    if clock is None or clock.tier is None or clock.deadline != case.deadline:
        return None
    return clock.tier


def local_deadline(given: str, zone: ZoneInfo) -> str:
    """A deadline as the form's date-and-time field gives it (the city's local time, no
    zone) in ISO 8601 with the city's offset; anything else as given, for the API to refuse
    beside the field."""
    try:
        at = datetime.fromisoformat(given)
    except ValueError:
        return given
    return (at if at.tzinfo else at.replace(tzinfo=zone)).isoformat()


# --- photos: before (the report's, the verification's) and after (the department's) -----------

MEDIA_ID = re.compile(r"^[0-9a-f]{24}$")


@dataclass(frozen=True)
class Photos:
    before: tuple[str, ...]  # media ids
    after: tuple[str, ...]

    def __contains__(self, media_id: object) -> bool:
        return media_id in self.before or media_id in self.after


def photos(case: CaseRecord, intake_url: str) -> Photos:
    """The case's photos by media id: the report's and the verification's (处置前), and the
    after-photos a department linked to intake's uploads when it reported the case handled
    and the supervisor's check's (处置后); a link elsewhere is the department's own, not the
    console's to show."""
    before = [*case.media]
    after: list[str] = []
    for entry in case.timeline:
        if entry.type == "case.verified":
            before += [m for m in entry.data.get("media") or [] if isinstance(m, str)]
        if entry.type == "case.handled":
            after += _uploads(entry.data.get("photos") or [], f"{intake_url}/media/")
        if entry.type == "case.checked":  # the supervisor's photos of the site as checked
            after += [m for m in entry.data.get("media") or [] if isinstance(m, str)]
    return Photos(tuple(dict.fromkeys(before)), tuple(dict.fromkeys(after)))


def _uploads(links: Sequence[Any], prefix: str) -> list[str]:
    ids = [str(link)[len(prefix) :] for link in links if str(link).startswith(prefix)]
    return [i for i in ids if MEDIA_ID.match(i)]


# --- each stage's clock and light (the case page) ---------------------------------------------


@dataclass(frozen=True)
class StageLight:
    stage: Stage
    deadline: datetime
    light: Light
    done: bool = False  # the case went past the stage: its clock no longer runs


# The states a stage's clock runs in; past them, the stage is done.
RUNNING: dict[Stage, frozenset[State]] = {
    Stage.verify: frozenset({State.reported}),
    Stage.file: frozenset({State.reported, State.verified}),
    Stage.dispatch: frozenset({State.filed, State.returned, State.rework}),
    Stage.handle: frozenset({State.dispatched, State.parked}),
    Stage.check: frozenset({State.handled}),
}


def stage_lights(case: CaseRecord, now: datetime) -> list[StageLight]:
    """Each stage's deadline and light, in the loop's order: the verification task's due
    time, the SLA engine's clocks (yellow on a warning, red on a breach), and the handling
    deadline with the light every screen shows."""
    found: dict[Stage, StageLight] = {}
    if case.verification_due is not None:
        late = case.state is State.reported and case.verification_due <= now
        found[Stage.verify] = StageLight(
            Stage.verify, case.verification_due, Light.red if late else Light.green
        )
    for name, clock in case.sla.items():
        if name in Stage.__members__:
            found[Stage(name)] = StageLight(Stage(name), clock.deadline, Light(clock.light))
    if case.deadline is not None:
        found[Stage.handle] = StageLight(Stage.handle, case.deadline, light(case, now))
    return [
        replace(found[s], done=s in RUNNING and case.state not in RUNNING[s])
        for s in Stage
        if s in found
    ]


def catalogue(pack: CityPack) -> dict[str, str]:
    """The catalogue as the forms offer it: "kind:code" → its code and name."""
    return {f"{c.kind}:{c.code}": f"{c.code} {c.name}" for c in pack.city.classes}


def visible(who: Principal, case: CaseRecord, pack: CityPack | None) -> bool:
    """Who may open a case; to anyone else it is "no such case". A department: what it
    holds. The grid's people (网格员): the cases of their grids (the pack's staff
    register). A tier office: the disputes of its area, whichever tier holds them now
    (docs/disputes.md). The centres, supervisors and admins: every case."""
    if who.department is not None:
        return case.held_by(who.department)
    if who.role is Role.grid_staff:  # without a pack, no register: no grid of theirs
        grids = pack.grids_of(who.subject) if pack is not None else []
        return case.grid_code is not None and case.grid_code in grids
    if who.role is Role.tier_office:
        grid = case.grid_code
        ladder = get_args(DisputeTier)
        return (
            case.kind == "dispute"
            and grid is not None
            and who.subject in {office_code(tier, grid) for tier in ladder}
        )
    return True
