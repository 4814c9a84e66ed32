"""`components.csv` (optional): the component inventory (部件普查), one row per coded
component, checked against the catalogue, the departments and the grids."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from shapely import STRtree
from shapely.geometry import Point

from gridloop.citypack.errors import Errors, loc_text
from gridloop.citypack.grids import GridAt
from gridloop.citypack.model import CityFile, ComponentInstance

COMPONENTS_FILE = "components.csv"
COMPONENT_COLUMNS = ("id", "class_code", "name", "lon", "lat", "grid", "owner", "maintainer")
# Statuses may be written in Chinese, as the standard names them.
STATUS_NAMES = {"完好": "intact", "破损": "damaged", "丢失": "lost", "废弃": "abandoned"}
STATUS_NAMES["移除"] = "removed"


@dataclass(frozen=True)
class ComponentAt:
    component: ComponentInstance
    line: int


def load_components(path: Path, errors: Errors) -> list[ComponentAt]:
    """The component inventory (部件普查), optional: one row per coded component."""
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        errors.add(path.name, None, f"cannot read: {exc}")
        return []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if missing := [c for c in COMPONENT_COLUMNS if c not in header]:
        errors.add(path.name, 1, f"missing column(s): {', '.join(missing)}")
        return []
    found = []
    for row in _rows(reader):
        line = reader.line_num
        if None in row:
            errors.add(path.name, line, "more fields than columns")
            continue
        fields = {k: v.strip() for k, v in row.items() if k and v is not None and v.strip()}
        status = fields.get("status")
        if status in STATUS_NAMES:
            fields["status"] = STATUS_NAMES[status]
        try:
            component = ComponentInstance.model_validate(fields)
        except ValidationError as exc:
            label = fields.get("id", "?")
            for e in exc.errors():
                errors.add(path.name, line, f"component {label}: {loc_text(e['loc'])}: {e['msg']}")
            continue
        found.append(ComponentAt(component, line))
    return found


def _rows(reader: csv.DictReader[str]) -> Iterator[dict[str | Any, str | Any]]:
    yield from reader


def check_components(
    city: CityFile, grids: list[GridAt], components: list[ComponentAt], errors: Errors
) -> None:
    departments = {d.code for d in city.departments}
    classes = {k.code for k in city.classes if k.kind == "component"}
    by_code = {g.grid.code: g for g in grids}
    tree = STRtree([g.polygon for g in grids]) if grids else None
    seen: dict[str, int] = {}
    for at in components:
        k, line = at.component, at.line
        label = f"component {k.id}"

        def error(message: str, line: int = line, label: str = label) -> None:
            errors.add(COMPONENTS_FILE, line, f"{label}: {message}")

        if k.id in seen:
            error(f"duplicate id (first on line {seen[k.id]})")
        seen.setdefault(k.id, line)
        width = len(k.id) - 12  # 16 digits: minor of 2 (CJ/T 214); 17: minor of 3
        if len(k.class_code) != width:
            error(f"a {len(k.id)}-digit id needs a {width}-digit class code, not {k.class_code}")
        elif k.id[6 : 6 + width] != k.class_code:
            error(f"id says class {k.id[6 : 6 + width]}, class_code says {k.class_code}")
        if not k.id.startswith(city.district.code):
            error(f"id is not in district {city.district.code}")
        if k.class_code not in classes:
            error(f"unknown component class {k.class_code}")
        for role in ("owner", "maintainer"):
            if (dept := getattr(k, role)) not in departments:
                error(f"unknown {role} department {dept}")
        grid = by_code.get(k.grid)
        if grid is None:
            error(f"unknown grid {k.grid}")
        elif not grid.polygon.covers(Point(k.lon, k.lat)):
            hits = tree.query(Point(k.lon, k.lat), predicate="intersects") if tree else []
            inside = sorted(grids[int(i)].grid.code for i in hits)
            where = f"it lies in grid {inside[0]}" if inside else "it lies outside every grid"
            error(f"({k.lon}, {k.lat}) is outside its grid {k.grid}: {where}")
