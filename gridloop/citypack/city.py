"""`city.yaml`: the district, its streets and communities, departments and the catalogue.
Loaded entry by entry, so that an invalid file still yields its valid entries for the checks
across files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from gridloop.citypack.errors import Errors, Path_, line_of, loc_text, yaml_lines
from gridloop.citypack.model import FORMATS, CityFile, District, FeedbackPolicy, IntakePolicy

CITY_FILE = "city.yaml"


@dataclass
class CityAt:
    """`city.yaml` as loaded: the model (partial if invalid), the line of every value, and
    for each list the original index of each entry kept."""

    model: CityFile
    lines: dict[Path_, int]
    kept: dict[str, list[int]]

    def line(self, section: str, position: int) -> int | None:
        return line_of(self.lines, (section, self.kept[section][position]))


_SECTIONS = ("streets", "communities", "departments", "majors", "classes")


def load_city(path: Path, errors: Errors) -> CityAt | None:
    try:
        text = path.read_text(encoding="utf-8")
        lines = yaml_lines(yaml.compose(text, Loader=yaml.SafeLoader))
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
        return CityAt(city, lines, {s: list(range(len(getattr(city, s)))) for s in _SECTIONS})
    except ValidationError as exc:
        for e in exc.errors():
            loc = tuple(e["loc"])
            message = e["msg"]
            if loc == ("format",):
                message = f"unsupported format {raw.get('format')!r}; this code reads " + (
                    ", ".join(FORMATS)
                )
            errors.add(path.name, line_of(lines, loc), f"{loc_text(loc)}: {message}")
        return _valid_part(raw, lines)


def _valid_part(raw: Any, lines: dict[Path_, int]) -> CityAt | None:
    """The entries of an invalid `city.yaml` that are valid on their own, so that the
    cross-file checks still run and report their errors too."""
    if not isinstance(raw, dict):
        return None
    try:
        district = District.model_validate(raw.get("district"))
    except ValidationError:
        return None
    parts: dict[str, Any] = {}
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
        feedback=FeedbackPolicy(),
        **parts,
    )
    return CityAt(city, lines, kept)


def _try(model: type[BaseModel], entry: Any) -> BaseModel | None:
    try:
        return model.model_validate(entry)
    except ValidationError:
        return None


def check_city(city: CityAt, errors: Errors) -> None:
    """Streets' offices, communities' streets, classes' owners and majors, duplicates."""
    c = city.model
    departments = {d.code for d in c.departments}
    streets = {s.code for s in c.streets}
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
