"""The patrol geofence (电子围栏): is a point inside the grid it is reported in? Pure: the
grid's polygon comes from the city pack (grids.geojson), the verdict from its `staff.yaml`
(`patrols.outside`: refuse or flag)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import shapely
from shapely.geometry import Polygon

from gridloop.citypack.staff import Outside
from gridloop.refusal import invalid


@dataclass(frozen=True)
class Located:
    lon: float
    lat: float


def outside(polygon: Polygon, points: Sequence[Located]) -> list[bool]:
    """For each point, whether it lies outside the polygon (its boundary counts as inside,
    as `CityPack.locate` counts it)."""
    if not points:
        return []
    found = shapely.points([p.lon for p in points], [p.lat for p in points])
    return [not bool(inside) for inside in shapely.covers(polygon, found)]


def fenced(
    polygon: Polygon, points: Sequence[Located], policy: Outside, where: tuple[str, ...]
) -> list[bool]:
    """The points' outside flags; refused (422, naming the first point out and how many)
    when the pack refuses points outside the grid."""
    flags = outside(polygon, points)
    if policy == "refuse" and any(flags):
        first = flags.index(True)
        out = sum(flags)
        loc = (*where, str(first)) if len(points) > 1 else where
        raise invalid(
            loc, f"{out} point(s) outside the grid, the first at index {first}", "outside_grid"
        )
    return flags
