"""Reports become cases. Pure: the city pack, the report and the clock in, events out.

Channels: supervisors' handhelds (GPS point or a coded component, photos and voice notes),
the hotline (an operator types the caller's report: phone, name, address or point) and the
website/app (citizens). Citizen reports become verification tasks (核实) for their grid's
supervisor; supervisor reports are filed (立案) with a case number by rule when the pack
says so. A report of the same class near an open case is merged into it (duplicates.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from gridloop.access import PUBLIC, Principal
from gridloop.access import Role as Access
from gridloop.cases import CaseView
from gridloop.citypack import CityPack, ComponentInstance, Grid
from gridloop.refusal import Refused, Why, forbidden, invalid
from schemas.events import (
    Actor,
    CaseEvent,
    CaseFiled,
    CaseMerged,
    CaseReported,
    Channel,
    EventData,
    Kind,
    Point,
    Reporter,
    Role,
    Stage,
)
from services.intake.commands import Report
from services.intake.duplicates import Nearby, find_duplicate

SYSTEM = Actor(role=Role.system, id="intake")


# --- who may report through which channel -----------------------------------------------

CHANNEL_ROLES: dict[Channel, frozenset[Access]] = {
    # Anyone may report through the website, with or without an account.
    Channel.website: frozenset(Access),
    Channel.hotline: frozenset({Access.hotline}),
    # The handheld's channel: supervisors, and the grid's staff (a visit's finding, 走访).
    Channel.supervisor: frozenset({Access.supervisor, Access.grid_staff}),
}
# Who sees reporters' names and phone numbers.
PERSONAL_DATA_ROLES = frozenset({Access.hotline, Access.supervision_centre, Access.admin})

_ACTOR_ROLE = {
    Access.public: Role.citizen,
    Access.hotline: Role.hotline,
    Access.supervisor: Role.supervisor,
    Access.supervision_centre: Role.supervision_centre,
    Access.command_centre: Role.command_centre,
    Access.department: Role.department,
    Access.admin: Role.system,
    Access.grid_staff: Role.grid_staff,
    Access.shift_lead: Role.shift_lead,
    Access.tier_office: Role.tier_office,
}


def actor_of(who: Principal) -> Actor:
    return Actor(role=_ACTOR_ROLE[who.role], id=who.subject[:64], person=_person(who))


def _person(who: Principal) -> str | None:
    """The person signed in, when another than the credential's subject names."""
    return who.person[:64] if who.person and who.person != who.subject else None


def _reporting_actor(report: Report) -> Actor:
    who = report.who
    if who.role not in CHANNEL_ROLES[report.channel] and who == PUBLIC:
        raise Refused(
            Why.unauthenticated,
            ("header", "Authorization"),
            f"the {report.channel.value} channel needs a bearer token",
        )
    if who.role not in CHANNEL_ROLES[report.channel]:
        allowed = ", ".join(sorted(r.value for r in CHANNEL_ROLES[report.channel]))
        raise forbidden(
            ("body", "channel"),
            f"role {who.role.value} may not report through the {report.channel.value} "
            f"channel; allowed: {allowed}",
        )
    if report.channel is Channel.website:
        if who == PUBLIC:
            # An anonymous citizen: the channel stands in for the person.
            return Actor(role=Role.citizen, id=report.reporter.id or report.channel.value)
        return Actor(role=Role.citizen, id=who.subject[:64])
    return actor_of(who)


# --- where: point, component or the operator's grid ----------------------------------------


def _missing(loc: tuple[str, ...], reason: str) -> Refused:
    return invalid(loc, reason, "missing")


def _component(report: Report, pack: CityPack) -> ComponentInstance | None:
    if report.component_id is None:
        return None
    component = pack.component(report.component_id)
    if component is None:
        raise invalid(
            ("body", "component_id"),
            f"no component {report.component_id} in this city's inventory",
            "unknown_component",
        )
    if component.status == "removed":
        raise invalid(
            ("body", "component_id"),
            f"component {component.id} was removed from the inventory",
            "removed_component",
        )
    if report.kind not in (None, "component"):
        raise invalid(("body", "kind"), "a coded component is of kind component", "kind_mismatch")
    if report.class_code not in (None, component.class_code):
        raise invalid(
            ("body", "class_code"),
            f"component {component.id} is of class {component.class_code}, not {report.class_code}",
            "class_mismatch",
        )
    return component


def _outside(pack: CityPack, point: Point) -> Refused:
    return invalid(
        ("body", "point"),
        f"({point.lon}, {point.lat}) lies outside every grid of {pack.city.name}",
        "outside_grids",
    )


def _locate(report: Report, pack: CityPack, component: ComponentInstance | None) -> tuple[
    Point, Grid
]:  # fmt: skip
    if component is not None:
        return Point(lon=component.lon, lat=component.lat), pack.grid_by_code[component.grid]
    if report.point is not None:
        grid = pack.locate(report.point.lon, report.point.lat)
        if grid is None:
            raise _outside(pack, report.point)
        if report.grid_code not in (None, grid.code):
            raise invalid(
                ("body", "grid_code"),
                f"the point lies in grid {grid.code}, not {report.grid_code}",
                "grid_mismatch",
            )
        return report.point, grid
    if report.channel is Channel.hotline and report.grid_code is not None:
        # The operator located the caller's address in a grid; the grid's inner point
        # stands for the location until the supervisor verifies it on site.
        grid = pack.grid_by_code.get(report.grid_code)
        if grid is None:
            raise invalid(("body", "grid_code"), f"no grid {report.grid_code}", "unknown_grid")
        if not report.address:
            raise _missing(("body", "address"), "a report located by grid needs its address")
        inner = pack.polygon(grid.code).representative_point()
        return Point(lon=round(inner.x, 7), lat=round(inner.y, 7)), grid
    if report.channel is Channel.hotline:
        raise _missing(
            ("body", "point"),
            "a hotline report needs a point, or the address and the grid_code it lies in",
        )
    raise _missing(("body", "point"), "a report needs a point or a component_id")


def _class(report: Report, pack: CityPack, component: ComponentInstance | None) -> tuple[
    Kind, str
]:  # fmt: skip
    if component is not None:
        return "component", component.class_code
    if report.kind is None:
        raise _missing(("body", "kind"), "say whether it is a component or an event")
    if report.class_code is None:
        raise _missing(("body", "class_code"), "name the class of the problem")
    if report.kind == "dispute":
        return "dispute", _dispute_type(report.class_code, pack)
    if (report.kind, report.class_code) not in pack.classes:
        raise invalid(
            ("body", "class_code"),
            f"no {report.kind} class {report.class_code} in this city's catalogue",
            "unknown_class",
        )
    return report.kind, report.class_code


def _dispute_type(code: str, pack: CityPack) -> str:
    """A dispute (矛盾纠纷) names one of the pack's dispute types (sla.yaml `disputes`)."""
    ladder = pack.sla.disputes
    if ladder is None:
        raise invalid(("body", "kind"), "this city takes no disputes", "no_disputes")
    if code not in ladder.types:
        known = ", ".join(sorted(ladder.types))
        raise invalid(
            ("body", "class_code"),
            f"no dispute type {code} in this city's pack; known: {known}",
            "unknown_class",
        )
    return code


def _check_reporter(report: Report) -> None:
    if report.channel is Channel.hotline and not report.contact.phone:
        raise _missing(("body", "reporter", "phone"), "a hotline report needs the caller's phone")


def _urgency(report: Report, pack: CityPack) -> str | None:
    """Staff grade a report's urgency; citizens do not (the website channel)."""
    if report.urgency is None:
        return None
    if report.channel is Channel.website:
        raise invalid(
            ("body", "urgency"),
            "urgency is graded by supervisors and hotline operators, not on the website",
            "urgency_not_allowed",
        )
    if report.urgency not in pack.sla.urgencies:
        known = ", ".join(sorted(pack.sla.urgencies))
        raise invalid(
            ("body", "urgency"),
            f"no urgency {report.urgency} in this city's policy; known: {known}",
            "unknown_urgency",
        )
    return report.urgency


def _verification_due(
    pack: CityPack,
    kind: Kind,
    class_code: str,
    urgency: str | None,
    now: datetime,
    channel: str | None = None,
) -> datetime | None:
    """When the verification task (核实) falls due: the one deadline function, on the
    class's clock at the report's urgency (a hotline case's: its time class's), as the SLA
    engine times it."""
    deadline = pack.sla.deadline(Stage.verify, kind, class_code, urgency, now, channel)
    return deadline.due if deadline is not None else None


# --- reports -------------------------------------------------------------------------------


def decide_report(
    pack: CityPack,
    report: Report,
    now: datetime,
    nearby: Sequence[Nearby] = (),
    case_number: str | None = None,
) -> list[CaseEvent]:
    """A report becomes a case: merged into an open duplicate; else, from a supervisor,
    filed at once when the pack says so (with `case_number`); else it waits — a citizen
    report as a verification task for its grid's supervisor."""
    actor, case_id, who = _reporting_actor(report), report.case_id, report.who
    _check_reporter(report)
    urgency = _urgency(report, pack)
    component = _component(report, pack)
    kind, class_code = _class(report, pack, component)
    point, grid = _locate(report, pack, component)
    reporter = report.reporter
    if report.channel is Channel.supervisor or (
        report.channel is Channel.website and who != PUBLIC
    ):  # the reporter is the credential's holder (the hotline's is the caller)
        reporter = reporter.model_copy(update={"id": actor.id})
    if kind == "dispute":  # its grid mediates at once: no verification, no duplicates
        return [_dispute_reported(report, actor, reporter, point, grid.code, class_code, urgency)]
    citizen = report.channel is not Channel.supervisor
    due = (
        _verification_due(pack, kind, class_code, urgency, now, report.channel) if citizen else None
    )
    reported = CaseReported(
        case_id=case_id,
        version=1,
        actor=actor,
        channel=report.channel,
        kind=kind,
        class_code=class_code,
        component_id=component.id if component else None,
        point=point,
        grid_code=grid.code,
        description=report.description,
        reporter=reporter,
        media=list(report.media),
        address=report.address,
        verifier=grid.supervisor if citizen else None,
        verification_due=due,
        urgency=urgency,
    )
    cls = pack.classes[(kind, class_code)]
    duplicate = find_duplicate(
        nearby, case_id, point, now, cls.duplicate_radius_m, cls.duplicate_window
    )
    if duplicate is not None:
        target, metres = duplicate
        reason = f"duplicate of open case {target.case_id}, {metres:.0f} m away"
        return [reported, merged(case_id, 2, SYSTEM, target.case_id, reason)]
    if citizen or not pack.city.intake.auto_file:
        return [reported]
    return [
        reported,
        filed(reported, 2, SYSTEM, "a supervisor's report, filed by rule", case_number),
    ]


def _dispute_reported(
    report: Report,
    actor: Actor,
    reporter: Reporter,
    point: Point,
    grid_code: str,
    class_code: str,
    urgency: str | None,
) -> CaseReported:
    """A dispute reported (a visit's finding, a resident, the hotline): owned by its grid
    from here, the tier ladder's (services/dispatch/disputes.py)."""
    return CaseReported(
        case_id=report.case_id,
        version=1,
        actor=actor,
        channel=report.channel,
        kind="dispute",
        class_code=class_code,
        point=point,
        grid_code=grid_code,
        description=report.description,
        reporter=reporter,
        media=list(report.media),
        address=report.address,
        urgency=urgency,
    )


def merged(case_id: str, version: int, actor: Actor, into: str, reason: str) -> CaseMerged:
    """A duplicate merged into the open case `into`."""
    return CaseMerged(
        case_id=case_id, version=version, actor=actor, into_case_id=into, reason=reason
    )


def filed(
    reported: CaseReported | CaseView,
    version: int,
    actor: Actor,
    reason: str,
    case_number: str | None,
    corrected: tuple[Kind, str] | None = None,
) -> CaseFiled:
    """The filing of `reported`, in its own class or the `corrected` one."""
    assert reported.kind is not None and reported.class_code and reported.grid_code
    kind, class_code = corrected or (reported.kind, reported.class_code)
    return CaseFiled(
        case_id=reported.case_id,
        version=version,
        actor=actor,
        kind=kind,
        class_code=class_code,
        grid_code=reported.grid_code,
        component_id=reported.component_id,
        case_number=case_number,
        reason=reason,
    )


E = TypeVar("E", bound=EventData)


def to_file(events: Sequence[EventData]) -> CaseFiled | None:
    """The filing among `events`, if they file the case (and need a case number)."""
    return next((e for e in events if isinstance(e, CaseFiled)), None)


def with_number(events: Sequence[E], number: str) -> list[E]:
    """`events` with their filing numbered: what the decision makes when given `number`
    (nothing else in it depends on the number), without deciding again."""
    return [
        e.model_copy(update={"case_number": number}) if isinstance(e, CaseFiled) else e
        for e in events
    ]


def case_number(kind: Kind, class_code: str, day: date, sequence: int) -> str:
    """Class + date + sequence (立案编号): B for components (部件), S for events (事件)."""
    return f"{'B' if kind == 'component' else 'S'}{class_code}-{day:%Y%m%d}-{sequence:04d}"


def local_day(pack: CityPack, now: datetime) -> date:
    """The city's date at `now`: case numbers are dated in local time."""
    return now.astimezone(ZoneInfo(pack.city.timezone)).date()
