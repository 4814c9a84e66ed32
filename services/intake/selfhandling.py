"""自处置 (self-handling): a supervisor or grid manager fixes a minor problem on the spot.
Pure: the city pack, the command, the grids the person works and the clock in, events out
(or a `Refused`).

The case opens and ends in one command: `case.reported` (the supervisor channel: the
handheld; its media are the photos before) and `case.self_handled` (the photos after), never
filed or dispatched, so no dispatch or handling clock ever runs and evaluation counts it
apart. Allowed for the classes the pack marks (`self_handling: true` in city.yaml), with at
least one photo before and one after, inside the grids the person works: a supervisor's are
the pack's `Grid.supervisor`, a grid manager's the pack's staff register.
"""

from __future__ import annotations

from collections.abc import Collection

from gridloop.access import Principal
from gridloop.access import Role as Access
from gridloop.citypack import CityPack
from gridloop.refusal import Refused, Why, invalid
from schemas.events import CaseEvent, CaseReported, CaseSelfHandled, Channel, Reporter
from services.intake.commands import Report, SelfHandle
from services.intake.reporting import _class, _component, _locate, actor_of

SELF_HANDLERS = frozenset({Access.supervisor, Access.grid_staff})


def own_grids(pack: CityPack, who: Principal) -> frozenset[str]:
    """The grids `who` works in: a supervisor's from the pack's grids (`Grid.supervisor`),
    a grid manager's (or a member of the grid's service team) from the pack's staff
    register (`staff.yaml`); nobody else's."""
    if who.role is Access.supervisor:
        return frozenset(pack.supervised_by(who.subject))
    if who.role is Access.grid_staff:
        return frozenset(pack.grids_of(who.subject))
    return frozenset()


def _photos(handle: SelfHandle) -> None:
    for field, photos in (("before", handle.before), ("after", handle.after)):
        if not photos:
            raise invalid(
                ("body", field),
                f"self-handling needs a photo {field} the fix (upload it with POST /media)",
                "missing",
            )


def decide_self_handling(
    pack: CityPack, handle: SelfHandle, grids: Collection[str]
) -> list[CaseEvent]:
    """The report and its self-handling, or a refusal: the class does not allow it, a
    photo is missing, or the problem lies outside the person's grids (`grids`)."""
    _photos(handle)
    report = Report(
        case_id=handle.case_id,
        who=handle.who,
        channel=Channel.supervisor,
        description=handle.description,
        kind=handle.kind,
        class_code=handle.class_code,
        component_id=handle.component_id,
        point=handle.point,
        media=handle.before,
    )
    component = _component(report, pack)
    kind, class_code = _class(report, pack, component)
    cls = pack.classes[(kind, class_code)]
    if not cls.self_handling:
        raise invalid(
            ("body", "component_id" if component else "class_code"),
            f"{kind} class {class_code} ({cls.name}) is not fixed on the spot in "
            f"{pack.city.name}: report it to be filed and dispatched",
            "self_handling_not_allowed",
        )
    point, grid = _locate(report, pack, component)
    if grid.code not in grids:
        mine = ", ".join(sorted(grids)) or "none"
        raise Refused(
            Why.forbidden,
            ("body", "component_id" if component else "point"),
            f"the problem lies in grid {grid.code}, not one of yours ({mine})",
            "outside_own_grids",
        )
    actor = actor_of(handle.who)
    reported = CaseReported(
        case_id=handle.case_id,
        version=1,
        actor=actor,
        channel=Channel.supervisor,
        kind=kind,
        class_code=class_code,
        component_id=component.id if component else None,
        point=point,
        grid_code=grid.code,
        description=handle.description,
        reporter=Reporter(id=actor.id),
        media=list(handle.before),
    )
    handled = CaseSelfHandled(
        case_id=handle.case_id,
        version=2,
        actor=actor,
        media=list(handle.after),
        note=handle.note,
        reason="fixed on the spot (自处置)",
    )
    return [reported, handled]
