"""Who owns a problem (routing): the lead department, the assisting ones, and which rule
chose them and why (`basis`, `rule`). Most specific rule first:
1. the component instance's maintainer (养护单位), else its owner (权属单位);
2. a location rule: an area such as a park or a river bank owned by a body (the smallest
   area containing the point wins), possibly with assisting departments (a joint case);
3. the class's default owner;
4. the grid's street office, owner of last resort (属地兜底).
A rule naming a department the pack does not know is skipped, so the next one decides.
Pure: dispatch routes a filed case by it, the console shows its suggestion the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridloop.citypack.pack import CityPack
from schemas.events import Kind, Point, RoutingBasis


@dataclass(frozen=True)
class Routed:
    """The lead department, the assisting ones, and which rule chose them (and why)."""

    department: str
    assisting: tuple[str, ...]
    basis: RoutingBasis
    rule: str


def route(
    pack: CityPack,
    kind: Kind,
    class_code: str,
    grid_code: str,
    point: Point | None = None,
    component_id: str | None = None,
) -> Routed:
    """The owner of the problem, by the most specific rule that names a known department."""
    known = pack.departments
    component = pack.components.get(component_id) if component_id else None
    if component is not None:
        for role, code in (("maintainer", component.maintainer), ("owner", component.owner)):
            if code in known:
                return Routed(
                    code, (), "component", f"{role} of component {component.id} ({component.name})"
                )
    if point is not None:
        rule = pack.routing.match(point.lon, point.lat, kind, class_code, known)
        if rule is not None:
            assisting = tuple(a for a in rule.assisting if a in known)
            return Routed(rule.owner, assisting, "location", f"location rule {rule.name}")
    cls = pack.classes.get((kind, class_code))
    if cls is not None and cls.owner in known:
        return Routed(cls.owner, (), "class_default", f"default owner of {kind} class {class_code}")
    street = pack.streets[grid_code[6:9]]
    return Routed(
        street.office,
        (),
        "street_office",
        f"street office of grid {grid_code} (owner of last resort)",
    )
