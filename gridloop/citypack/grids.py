"""`grids.geojson`: the unit grids, each a valid closed Polygon; grids may share edges and
vertices, never area."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from shapely import STRtree
from shapely.geometry import Polygon, shape
from shapely.validation import explain_validity

from gridloop.citypack.errors import Errors, loc_text
from gridloop.citypack.model import CityFile, Grid

GRIDS_FILE = "grids.geojson"


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
class GridAt:
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


def load_grids(path: Path, errors: Errors) -> list[GridAt]:
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
                errors.add(path.name, line, f"{where}: {loc_text(e['loc'])}: {e['msg']}")
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
        grids.append(GridAt(grid, polygon, line))
    return grids


def check_grids(city: CityFile, grids: list[GridAt], errors: Errors) -> None:
    """Duplicate codes, grids outside the district or their community, overlaps."""
    communities = {m.code for m in city.communities}
    seen: set[str] = set()
    for g in grids:
        code = g.grid.code
        if code in seen:
            errors.add(GRIDS_FILE, g.line, f"grid {code}: duplicate code")
        seen.add(code)
        if not code.startswith(city.district.code):
            errors.add(GRIDS_FILE, g.line, f"grid {code}: not in district {city.district.code}")
        if g.grid.community not in communities or code[6:12] != g.grid.community:
            errors.add(
                GRIDS_FILE,
                g.line,
                f"grid {code}: community {g.grid.community} is unknown or does not match the code",
            )
    _check_overlaps(grids, errors)


def _check_overlaps(grids: list[GridAt], errors: Errors) -> None:
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
