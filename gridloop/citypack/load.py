"""Load a city pack from disk; collect every error instead of stopping at the first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from shapely.geometry import Polygon, shape

from gridloop.citypack.model import CityFile, CityPack, District, Grid


class CityPackError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} error(s) in the city pack:\n" + "\n".join(errors))


def _pydantic_errors(file: str, exc: ValidationError) -> list[str]:
    return [f"{file}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]


def _load_city(path: Path, errors: list[str]) -> CityFile | None:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return CityFile.model_validate(raw)
    except OSError as exc:
        errors.append(f"{path.name}: cannot read: {exc}")
    except yaml.YAMLError as exc:
        errors.append(f"{path.name}: not YAML: {exc}")
    except ValidationError as exc:
        errors.extend(_pydantic_errors(path.name, exc))
        return _valid_part(raw)
    return None


def _valid_part(raw: Any) -> CityFile | None:
    """The entries of an invalid `city.yaml` that are valid on their own, so that the
    cross-file checks still run and report their errors too."""
    if not isinstance(raw, dict):
        return None
    try:
        district = District.model_validate(raw.get("district"))
    except ValidationError:
        return None
    parts: dict[str, list[Any]] = {}
    for name in ("streets", "communities", "departments", "classes"):
        model = get_args(CityFile.model_fields[name].annotation)[0]
        entries = raw.get(name)
        valid = (_try(model, e) for e in (entries if isinstance(entries, list) else []))
        parts[name] = [m for m in valid if m is not None]
    # Only the cross-file checks read this partial pack; load_city_pack refuses it anyway.
    return CityFile.model_construct(
        None,
        format="gridloop-citypack/1",
        name=str(raw.get("name", "")),
        district=district,
        **parts,
    )


def _try(model: type[BaseModel], entry: Any) -> BaseModel | None:
    try:
        return model.model_validate(entry)
    except ValidationError:
        return None


def _load_grids(path: Path, errors: list[str]) -> list[tuple[Grid, Polygon]]:
    try:
        features = json.loads(path.read_text(encoding="utf-8"))["features"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        errors.append(f"{path.name}: not a GeoJSON FeatureCollection: {exc}")
        return []
    grids = []
    for n, feature in enumerate(features):
        where = f"{path.name}: feature {n}"
        try:
            grid = Grid.model_validate(feature.get("properties") or {})
            polygon = shape(feature["geometry"])
        except ValidationError as exc:
            errors.extend(_pydantic_errors(where, exc))
            continue
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            errors.append(f"{where}: bad geometry: {exc}")
            continue
        if not isinstance(polygon, Polygon) or not polygon.is_valid:
            errors.append(f"{where} ({grid.code}): geometry is not a valid polygon")
            continue
        grids.append((grid, polygon))
    return grids


def _cross_check(city: CityFile, grids: list[tuple[Grid, Polygon]], errors: list[str]) -> None:
    departments = {d.code for d in city.departments}
    streets = {s.code for s in city.streets}
    communities = {c.code for c in city.communities}
    for s in city.streets:
        if s.office not in departments:
            errors.append(f"city.yaml: street {s.code}: unknown office department {s.office}")
    for c in city.communities:
        if c.code[:3] not in streets:
            errors.append(f"city.yaml: community {c.code}: unknown street {c.code[:3]}")
    seen_classes: set[tuple[str, str]] = set()
    for k in city.classes:
        if (k.kind, k.code) in seen_classes:
            errors.append(f"city.yaml: {k.kind} class {k.code}: duplicate code")
        seen_classes.add((k.kind, k.code))
        if k.owner not in departments:
            errors.append(f"city.yaml: class {k.code}: unknown owner department {k.owner}")
    seen: set[str] = set()
    for g, _ in grids:
        if g.code in seen:
            errors.append(f"grids.geojson: grid {g.code}: duplicate code")
        seen.add(g.code)
        if not g.code.startswith(city.district.code):
            errors.append(f"grids.geojson: grid {g.code}: not in district {city.district.code}")
        if g.community not in communities or g.code[6:12] != g.community:
            errors.append(
                f"grids.geojson: grid {g.code}: community {g.community} is unknown "
                "or does not match the code"
            )


def load_city_pack(path: Path | str) -> CityPack:
    """Load `city.yaml` and `grids.geojson` from `path`, or raise CityPackError."""
    root = Path(path)
    errors: list[str] = []
    city = _load_city(root / "city.yaml", errors)
    grids = _load_grids(root / "grids.geojson", errors)
    if city is not None:
        _cross_check(city, grids, errors)
    if errors or city is None:
        raise CityPackError(errors)
    return CityPack(city, grids)
