"""Load a city pack from disk; collect every error, each with its file and line, instead of
stopping at the first.

Errors read `file:line: what` (`file: what` when no line applies, e.g. a missing file).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from shapely import STRtree
from shapely.geometry import Point, Polygon, shape
from shapely.validation import explain_validity

from gridloop.citypack.model import (
    FORMATS,
    CityFile,
    CityPack,
    ComponentInstance,
    District,
    Grid,
    IntakePolicy,
)
from gridloop.citypack.routing import EMPTY as EMPTY_ROUTING
from gridloop.citypack.routing import attach_routing, load_routing

CITY_FILE, GRIDS_FILE, COMPONENTS_FILE = "city.yaml", "grids.geojson", "components.csv"
COMPONENT_COLUMNS = ("id", "class_code", "name", "lon", "lat", "grid", "owner", "maintainer")
# Statuses may be written in Chinese, as the standard names them.
STATUS_NAMES = {"完好": "intact", "破损": "damaged", "丢失": "lost", "废弃": "abandoned"}
STATUS_NAMES["移除"] = "removed"
Path_ = tuple[str | int, ...]


class CityPackError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} error(s) in the city pack:\n" + "\n".join(errors))


@dataclass
class _Errors:
    items: list[str] = field(default_factory=list)

    def add(self, file: str, line: int | None, message: str) -> None:
        self.items.append(f"{file}:{line}: {message}" if line else f"{file}: {message}")


def _loc(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in loc)


# --- city.yaml -----------------------------------------------------------------------------


def _yaml_lines(node: yaml.Node | None) -> dict[Path_, int]:
    """The 1-based line of every value (and of every mapping key) in a YAML document."""
    lines: dict[Path_, int] = {}

    def walk(n: yaml.Node, path: Path_) -> None:
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                sub = (*path, str(key.value))
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return lines


def _line(lines: dict[Path_, int], loc: Path_) -> int | None:
    """The line of `loc`, or of its nearest ancestor that exists (a missing field)."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


@dataclass
class _City:
    """`city.yaml` as loaded: the model (partial if invalid), the line of every value, and
    for each list the original index of each entry kept."""

    model: CityFile
    lines: dict[Path_, int]
    kept: dict[str, list[int]]

    def line(self, section: str, position: int) -> int | None:
        return _line(self.lines, (section, self.kept[section][position]))


_SECTIONS = ("streets", "communities", "departments", "majors", "classes")


def _load_city(path: Path, errors: _Errors) -> _City | None:
    try:
        text = path.read_text(encoding="utf-8")
        lines = _yaml_lines(yaml.compose(text, Loader=yaml.SafeLoader))
        raw = yaml.safe_load(text)
    except OSError as exc:
        errors.add(path.name, None, f"cannot read: {exc}")
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        errors.add(path.name, mark.line + 1 if mark else None, f"not YAML: {exc}")
        return None
    try:
        city = CityFile.model_validate(raw)
        return _City(city, lines, {s: list(range(len(getattr(city, s)))) for s in _SECTIONS})
    except ValidationError as exc:
        for e in exc.errors():
            loc = tuple(e["loc"])
            message = e["msg"]
            if loc == ("format",):
                message = f"unsupported format {raw.get('format')!r}; this code reads " + (
                    ", ".join(FORMATS)
                )
            errors.add(path.name, _line(lines, loc), f"{_loc(loc)}: {message}")
        return _valid_part(raw, lines)


def _valid_part(raw: Any, lines: dict[Path_, int]) -> _City | None:
    """The entries of an invalid `city.yaml` that are valid on their own, so that the
    cross-file checks still run and report their errors too."""
    if not isinstance(raw, dict):
        return None
    try:
        district = District.model_validate(raw.get("district"))
    except ValidationError:
        return None
    parts: dict[str, list[Any]] = {}
    kept: dict[str, list[int]] = {}
    for name in _SECTIONS:
        model = get_args(CityFile.model_fields[name].annotation)[0]
        entries = raw.get(name)
        valid = [(i, _try(model, e)) for i, e in enumerate(entries or []) if entries is not None]
        parts[name] = [m for _, m in valid if m is not None]
        kept[name] = [i for i, m in valid if m is not None]
    # Only the cross-file checks read this partial pack; load_city_pack refuses it anyway.
    city = CityFile.model_construct(
        None,
        format="gridloop-citypack/2",
        name=str(raw.get("name", "")),
        district=district,
        timezone="Asia/Shanghai",
        intake=IntakePolicy(),
        **parts,
    )
    return _City(city, lines, kept)


def _try(model: type[BaseModel], entry: Any) -> BaseModel | None:
    try:
        return model.model_validate(entry)
    except ValidationError:
        return None


# --- grids.geojson -------------------------------------------------------------------------


def _feature_lines(text: str) -> list[int]:
    """The line on which each element of the top-level `features` array starts (the json
    module keeps no positions)."""
    starts: list[int] = []
    depth, line, features_depth = 0, 1, -1
    in_string = escaped = False
    key: list[str] = []
    last_key = ""
    for ch in text:
        if ch == "\n":
            line += 1
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                if depth == 1:
                    last_key = "".join(key)
            elif depth == 1:
                key.append(ch)
        elif ch == '"':
            in_string, key = True, []
        elif ch in "{[":
            if depth == features_depth:
                starts.append(line)
            if ch == "[" and depth == 1 and last_key == "features":
                features_depth = depth + 1
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth < features_depth:
                features_depth = -1
    return starts


@dataclass(frozen=True)
class _GridAt:
    grid: Grid
    polygon: Polygon
    line: int | None


def _rings_closed(geometry: Any) -> str | None:
    """Why the GeoJSON polygon's rings are not closed linear rings, or None. (shapely would
    silently close an open ring.)"""
    if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
        return None
    rings = geometry.get("coordinates")
    if not isinstance(rings, list) or not rings:
        return "a Polygon needs at least one ring"
    for n, ring in enumerate(rings):
        name = "exterior ring" if n == 0 else f"hole {n}"
        if not isinstance(ring, list) or len(ring) < 4:
            return f"{name} has fewer than 4 positions"
        if ring[0] != ring[-1]:
            return f"{name} does not close: first {ring[0]} ≠ last {ring[-1]}"
    return None


def _load_grids(path: Path, errors: _Errors) -> list[_GridAt]:
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text)
        features = raw["features"]
        if not isinstance(features, list):
            raise TypeError("features is not a list")
    except json.JSONDecodeError as exc:
        errors.add(path.name, exc.lineno, f"not a GeoJSON FeatureCollection: {exc.msg}")
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        errors.add(path.name, None, f"not a GeoJSON FeatureCollection: {exc}")
        return []
    lines = _feature_lines(text)
    grids = []
    for n, feature in enumerate(features):
        line = lines[n] if n < len(lines) else None
        where = f"feature {n}"
        if not isinstance(feature, dict):
            errors.add(path.name, line, f"{where}: not a GeoJSON Feature")
            continue
        try:
            grid = Grid.model_validate(feature.get("properties") or {})
        except ValidationError as exc:
            for e in exc.errors():
                errors.add(path.name, line, f"{where}: {_loc(e['loc'])}: {e['msg']}")
            continue
        where = f"{where} (grid {grid.code})"
        geometry = feature.get("geometry")
        if (why := _rings_closed(geometry)) is not None:
            errors.add(path.name, line, f"{where}: polygon {why}")
            continue
        try:
            polygon = shape(geometry)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            errors.add(path.name, line, f"{where}: bad geometry: {exc}")
            continue
        if not isinstance(polygon, Polygon):
            errors.add(
                path.name, line, f"{where}: geometry is a {polygon.geom_type}, not a Polygon"
            )
            continue
        if not polygon.is_valid:
            why = explain_validity(polygon)
            errors.add(path.name, line, f"{where}: geometry is not a valid polygon ({why})")
            continue
        grids.append(_GridAt(grid, polygon, line))
    return grids


# --- components.csv ------------------------------------------------------------------------


@dataclass(frozen=True)
class _ComponentAt:
    component: ComponentInstance
    line: int


def _load_components(path: Path, errors: _Errors) -> list[_ComponentAt]:
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
                errors.add(path.name, line, f"component {label}: {_loc(e['loc'])}: {e['msg']}")
            continue
        found.append(_ComponentAt(component, line))
    return found


def _rows(reader: csv.DictReader[str]) -> Iterator[dict[str | Any, str | Any]]:
    yield from reader


# --- checks across files -------------------------------------------------------------------


def _cross_check(city: _City, grids: list[_GridAt], errors: _Errors) -> None:
    c = city.model
    departments = {d.code for d in c.departments}
    streets = {s.code for s in c.streets}
    communities = {m.code for m in c.communities}
    for i, s in enumerate(c.streets):
        if s.office not in departments:
            line = city.line("streets", i)
            errors.add(CITY_FILE, line, f"street {s.code}: unknown office department {s.office}")
    for i, m in enumerate(c.communities):
        if m.code[:3] not in streets:
            line = city.line("communities", i)
            errors.add(CITY_FILE, line, f"community {m.code}: unknown street {m.code[:3]}")
    seen_classes: set[tuple[str, str]] = set()
    majors = {(m.kind, m.code) for m in c.majors}
    for i, k in enumerate(c.classes):
        line = city.line("classes", i)
        if (k.kind, k.code) in seen_classes:
            errors.add(CITY_FILE, line, f"{k.kind} class {k.code}: duplicate code")
        seen_classes.add((k.kind, k.code))
        if k.owner not in departments:
            errors.add(CITY_FILE, line, f"class {k.code}: unknown owner department {k.owner}")
        if majors and (k.kind, k.major) not in majors:
            errors.add(CITY_FILE, line, f"{k.kind} class {k.code}: unknown major class {k.major}")
    seen: set[str] = set()
    for g in grids:
        code = g.grid.code
        if code in seen:
            errors.add(GRIDS_FILE, g.line, f"grid {code}: duplicate code")
        seen.add(code)
        if not code.startswith(c.district.code):
            errors.add(GRIDS_FILE, g.line, f"grid {code}: not in district {c.district.code}")
        if g.grid.community not in communities or code[6:12] != g.grid.community:
            errors.add(
                GRIDS_FILE,
                g.line,
                f"grid {code}: community {g.grid.community} is unknown or does not match the code",
            )
    _check_overlaps(grids, errors)


def _check_overlaps(grids: list[_GridAt], errors: _Errors) -> None:
    """Grids may share edges and vertices, never area."""
    tree = STRtree([g.polygon for g in grids])
    for i, g in enumerate(grids):
        for j in sorted(int(j) for j in tree.query(g.polygon, predicate="intersects")):
            other = grids[j]
            if j > i and g.polygon.relate_pattern(other.polygon, "T********"):
                errors.add(
                    GRIDS_FILE,
                    other.line,
                    f"grid {other.grid.code} overlaps grid {g.grid.code} "
                    f"(line {g.line}) by {g.polygon.intersection(other.polygon).area:.3g} deg²",
                )


def _check_components(
    city: _City, grids: list[_GridAt], components: list[_ComponentAt], errors: _Errors
) -> None:
    c = city.model
    departments = {d.code for d in c.departments}
    classes = {k.code for k in c.classes if k.kind == "component"}
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
        if not k.id.startswith(c.district.code):
            error(f"id is not in district {c.district.code}")
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


def load_city_pack(path: Path | str) -> CityPack:
    """Load `city.yaml`, `grids.geojson` and `components.csv` (optional) from `path`, or
    raise CityPackError listing every error."""
    root = Path(path)
    errors = _Errors()
    city = _load_city(root / CITY_FILE, errors)
    grids = _load_grids(root / GRIDS_FILE, errors)
    components = _load_components(root / COMPONENTS_FILE, errors)
    routing = EMPTY_ROUTING
    if city is not None:
        _cross_check(city, grids, errors)
        _check_components(city, grids, components, errors)
        departments = {d.code for d in city.model.departments}
        routing = load_routing(root, departments, errors.items)  # routing.yaml (optional)
    if errors.items or city is None:
        raise CityPackError(errors.items)
    pack = CityPack(
        city.model, [(g.grid, g.polygon) for g in grids], [c.component for c in components]
    )
    attach_routing(pack, routing)
    return pack
