"""The errors of a city pack: every one collected, each as `file:line: what` (`file: what`
when no line applies, e.g. a missing file), and the lines of YAML values they point to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Path_ = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


class CityPackError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} error(s) in the city pack:\n" + "\n".join(errors))


@dataclass
class Errors:
    items: list[str] = field(default_factory=list)

    def add(self, file: str, line: int | None, message: str) -> None:
        self.items.append(f"{file}:{line}: {message}" if line else f"{file}: {message}")


def loc_text(loc: Path_) -> str:
    return ".".join(str(p) for p in loc)


def yaml_lines(node: yaml.Node | None) -> dict[Path_, int]:
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


def line_of(lines: dict[Path_, int], loc: Path_) -> int | None:
    """The line of `loc`, or of its nearest ancestor that exists (a missing field)."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def read_model(path: Path, model: type[M], errors: list[str]) -> M | None:
    """A pack's YAML file validated as `model`; None, with every error appended to `errors`
    as `file: where: what`, when it cannot be read, is not YAML or does not validate."""
    try:
        return model.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except OSError as exc:
        errors.append(f"{path.name}: cannot read: {exc}")
    except yaml.YAMLError as exc:
        errors.append(f"{path.name}: not YAML: {exc}")
    except ValidationError as exc:
        errors.extend(f"{path.name}: {loc_text(e['loc'])}: {e['msg']}" for e in exc.errors())
    return None
