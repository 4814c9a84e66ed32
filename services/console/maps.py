"""The workbench's maps, drawn as inline SVG from the city pack's grid polygons: no tiles,
no script library, nothing fetched from elsewhere, so a map works on a closed network. A
tile server could be drawn beneath later (optional configuration); nothing here needs one.

Pure. The frame and the grids' paths are the kernel's (gridloop/svgmap.py), shared with the
big screen's map.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shapely.geometry import box

from gridloop.cases.lights import Light
from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack
from gridloop.svgmap import Frame, path
from gridloop.svgmap import frame as frame  # the workbench's pages call maps.frame


@dataclass(frozen=True)
class Dot:
    case: CaseRecord
    x: float
    y: float
    light: Light


def dots(f: Frame, cases: Sequence[CaseRecord], lights: dict[str, Light]) -> list[Dot]:
    """The cases with a point, where they lie on the drawing, reddest drawn last (on top)."""
    order = {Light.green: 0, Light.yellow: 1, Light.red: 2}
    found = [
        Dot(c, *f.xy(*c.point.coordinates), lights[c.case_id]) for c in cases if c.point is not None
    ]
    return sorted(found, key=lambda d: order[d.light])


@dataclass(frozen=True)
class Filters:
    """The map's filters: a class ("kind:code"), a street (3 digits), a department."""

    class_code: str = ""
    street: str = ""
    department: str = ""

    def where(self) -> dict[str, object]:
        """The class and the street as the database is asked them (the department chooses
        the read: `CaseReader.of_department`)."""
        found: dict[str, object] = {}
        if self.class_code:
            kind, _, code = self.class_code.partition(":")
            found |= {"kind": kind, "class_code": code}
        if self.street:  # a grid code's digits 7–9 (CJ/T 213): its street
            found["grid_code"] = {"$regex": f"^[0-9]{{6}}{re.escape(self.street)}"}
        return found

    def keep(self, case: CaseRecord) -> bool:
        if self.class_code and f"{case.kind}:{case.class_code}" != self.class_code:
            return False
        if self.street and (case.grid_code or "")[6:9] != self.street:
            return False
        return not self.department or case.held_by(self.department)


@dataclass(frozen=True)
class Drawn:
    """A grid on a map: its code and name, its SVG path, where its label goes."""

    code: str
    name: str
    d: str
    label: tuple[float, float]


def drawn(f: Frame, pack: CityPack, codes: Iterable[str]) -> list[Drawn]:
    found = []
    for code in codes:
        polygon = pack.polygon(code)
        inside = polygon.representative_point()
        grid = pack.grid_by_code[code]
        found.append(Drawn(code, grid.name, path(f, polygon), f.xy(inside.x, inside.y)))
    return found


@dataclass(frozen=True)
class CaseMap:
    """A case's small map: its grid among its neighbours, its point, its component."""

    frame: Frame
    grid: Drawn
    around: list[Drawn]  # the grids the frame also shows
    point: tuple[float, float] | None
    component: tuple[float, float] | None


def case_map(pack: CityPack, case: CaseRecord, width: float = 320.0) -> CaseMap | None:
    if case.grid_code is None or case.grid_code not in pack.grid_by_code:
        return None
    polygon = pack.polygon(case.grid_code)
    f = frame([polygon.bounds], width, margin=0.3)
    seen = box(f.west, f.south, f.east, f.north)
    around = [g.code for g in pack.grids if g.code != case.grid_code]
    around = [c for c in around if pack.polygon(c).intersects(seen)]
    point = f.xy(*case.point.coordinates) if case.point else None
    part = pack.component(case.component_id) if case.component_id else None
    [grid] = drawn(f, pack, [case.grid_code])
    spot = f.xy(part.lon, part.lat) if part else None
    return CaseMap(f, grid, drawn(f, pack, around), point, spot)
