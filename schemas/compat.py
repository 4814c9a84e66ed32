"""Backward compatibility of the event contract.

Events stay in Kafka forever, so a consumer built on the NEW schema of an event type must
still accept every event that was valid under the OLD one. `breaking_changes` checks that
for the shapes pydantic generates: objects with `additionalProperties: false` (our models
use `extra="forbid"`), `$ref` into `$defs`, `anyOf` with `null` for optional fields, enums,
`Literal` as `const`/`enum`, string/number constraints and formats.

It is a conservative, syntactic check, not a full JSON Schema subset decision: a change it
cannot prove harmless (a changed `pattern`, say) is reported as breaking.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.export import JsonSchema, file_name, json_schemas, render

EXPORT_COMMAND = "gridloop schemas export schemas/json"

# Keywords whose value is a lower bound: a new value above the old one rejects old events.
_LOWER_BOUNDS = ("minLength", "minItems", "minProperties", "minContains")
_UPPER_BOUNDS = ("maxLength", "maxItems", "maxProperties", "maxContains")


def breaking_changes(old: JsonSchema, new: JsonSchema) -> list[str]:
    """What makes some event valid under `old` invalid under `new`; empty if compatible.

    Each entry is `<path>: <what changed>`, the path starting at `$` (the event data).
    """
    return _Checker(old, new).compare(old, new, "$")


@dataclass
class DirectoryCheck:
    """The checked-in schema files against the current models.

    `breaking`: changes that would make stored events unreadable, or an event type that
    disappeared; these must not ship. `stale`: new types and compatible changes, which only
    mean that the checked-in files must be regenerated (`EXPORT_COMMAND`).
    """

    breaking: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaking and not self.stale

    def summary(self) -> str:
        lines = [f"breaking: {entry}" for entry in self.breaking]
        lines += [f"stale: {entry}" for entry in self.stale]
        if self.stale:
            lines.append(f"regenerate the checked-in schemas: {EXPORT_COMMAND}")
        return "\n".join(lines)


def check_directory(
    directory: Path, current: dict[str, JsonSchema] | None = None
) -> DirectoryCheck:
    """Compare the `<ce_type>.json` files in `directory` with `current` (the models')."""
    schemas = json_schemas() if current is None else current
    result = DirectoryCheck()
    stored = {p.name.removesuffix(".json"): p for p in sorted(directory.glob("*.json"))}
    for ce_type in sorted(stored.keys() - schemas.keys()):
        result.breaking.append(
            f"{ce_type}: event type disappeared; events of it are still in Kafka "
            f"(delete {stored[ce_type].name} only if that is really intended)"
        )
    for ce_type, schema in sorted(schemas.items()):
        path = stored.get(ce_type)
        if path is None:
            result.stale.append(f"{ce_type}: new event type, {file_name(ce_type)} not exported")
            continue
        text = path.read_text(encoding="utf-8")
        try:
            old = json.loads(text)
        except ValueError as exc:
            result.breaking.append(f"{ce_type}: {path.name} is not valid JSON: {exc}")
            continue
        problems = breaking_changes(old, schema)
        if problems:
            result.breaking += [f"{ce_type}: {problem}" for problem in problems]
        elif text != render(schema):
            result.stale.append(f"{ce_type}: compatible change, {path.name} is out of date")
    return result


# --- the checker ------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _canonical(value: Any) -> str:
    """A hashable, type-exact form of a JSON value (so that 1, 1.0 and true differ)."""
    return json.dumps(value, sort_keys=True)


def _types(schema: JsonSchema) -> set[str] | None:
    """The JSON types a schema accepts; None when it does not restrict them."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {str(t) for t in declared}
    if "const" in schema:
        return {_json_type(schema["const"])}
    if isinstance(schema.get("enum"), list):
        return {_json_type(v) for v in schema["enum"]}
    return None


def _values(schema: JsonSchema) -> list[Any] | None:
    """The values a schema is limited to (`const` or `enum`); None when not limited."""
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _type_accepts(types: set[str], value_type: str) -> bool:
    return value_type in types or (value_type == "integer" and "number" in types)


def _describe(schema: JsonSchema) -> str:
    values = _values(schema)
    if values is not None:
        return " | ".join(_canonical(v) for v in values)
    types = _types(schema)
    return " | ".join(sorted(types)) if types else "any value"


def _is_false(schema: Any) -> bool:
    return schema is False


@dataclass(frozen=True)
class _Branch:
    schema: JsonSchema
    ref: str  # the $ref chain that led to it, empty if inline
    pos: str  # which anyOf alternative, as /index/index...


def _overlap(old_types: set[str] | None, new_types: set[str] | None) -> bool:
    if old_types is None or new_types is None:
        return True
    return any(_type_accepts(new_types, t) for t in old_types)


def _may_be(json_type: str, old: JsonSchema, new: JsonSchema) -> bool:
    """Whether both schemas may accept values of `json_type`."""
    return all(types is None or json_type in types for types in (_types(old), _types(new)))


class _Checker:
    def __init__(self, old_root: JsonSchema, new_root: JsonSchema) -> None:
        self.roots = (old_root, new_root)
        self.in_progress: set[tuple[str, str, str, str]] = set()  # alternatives being compared

    # $ref resolution: JSON pointers into the schema's own document.

    def _resolve(self, schema: Any, side: int) -> tuple[JsonSchema, str]:
        """The schema with `$ref` (and a single-element `allOf`) merged in, and its ref."""
        if schema is True or schema is None:
            return {}, ""
        if schema is False:
            return {"not": {}}, ""
        resolved: JsonSchema = dict(schema)
        refs: list[str] = []
        for _ in range(32):  # a chain of refs, bounded against cycles of pure aliases
            ref = resolved.pop("$ref", None)
            if isinstance(ref, str):
                refs.append(ref)
                resolved = {**self._pointer(ref, side), **resolved}
                continue
            all_of = resolved.get("allOf")
            if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
                del resolved["allOf"]
                resolved = {**all_of[0], **resolved}
                continue
            break
        return resolved, "->".join(refs)

    def _pointer(self, ref: str, side: int) -> JsonSchema:
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref is supported, got {ref!r}")
        node: Any = self.roots[side]
        for part in filter(None, ref[1:].split("/")):
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, list):
                node = node[int(key)]
            elif isinstance(node, dict) and key in node:
                node = node[key]
            else:
                raise ValueError(f"unresolvable $ref {ref!r}")
        if not isinstance(node, dict):
            raise ValueError(f"$ref {ref!r} does not point at a schema")
        return node

    def _branches(self, raw: Any, side: int, ref: str = "", pos: str = "") -> list[_Branch]:
        """The alternatives of a schema (`anyOf`/`oneOf`), flattened, siblings merged in."""
        schema, own_ref = self._resolve(raw, side)
        ref = "->".join(filter(None, (ref, own_ref)))
        for keyword in ("anyOf", "oneOf"):
            alternatives = schema.get(keyword)
            if isinstance(alternatives, list):
                rest = {k: v for k, v in schema.items() if k != keyword}
                branches: list[_Branch] = []
                for index, alternative in enumerate(alternatives):
                    merged = (
                        {**rest, **alternative} if isinstance(alternative, dict) else alternative
                    )
                    branches += self._branches(merged, side, ref, f"{pos}/{index}")
                return branches
        return [_Branch(schema, ref, pos)]

    # Comparison.

    def compare(self, old_raw: Any, new_raw: Any, path: str) -> list[str]:
        old_branches = self._branches(old_raw, 0)
        new_branches = self._branches(new_raw, 1)
        if len(old_branches) == 1 and len(new_branches) == 1:
            return self._guarded(old_branches[0], new_branches[0], path)
        problems: list[str] = []
        for old in old_branches:
            attempts = [(self._guarded(old, new, path), new) for new in new_branches]
            if any(not found for found, _ in attempts):
                continue  # some new alternative accepts everything this old one did
            old_types = _types(old.schema)
            similar = [found for found, new in attempts if _overlap(old_types, _types(new.schema))]
            if similar:
                closest: list[str] = min(similar, key=len)
                problems += closest
            else:
                problems.append(f"{path}: no longer accepts {_describe(old.schema)}")
        return problems

    def _guarded(self, old: _Branch, new: _Branch, path: str) -> list[str]:
        """Compare two alternatives, cutting the recursion of self-referencing models."""
        if not (old.ref or new.ref):
            return self._compare_single(old.schema, new.schema, path)
        key = (old.ref, old.pos, new.ref, new.pos)
        if key in self.in_progress:
            return []  # already being compared further up: assume compatible
        self.in_progress.add(key)
        try:
            return self._compare_single(old.schema, new.schema, path)
        finally:
            self.in_progress.discard(key)

    def _compare_single(self, old: JsonSchema, new: JsonSchema, path: str) -> list[str]:
        if old.get("not") == {}:
            return []
        if new.get("not") == {}:
            return [f"{path}: accepts nothing any more"]
        problems = self._compare_types(old, new, path)
        problems += self._compare_values(old, new, path)
        problems += self._compare_constraints(old, new, path)
        if _may_be("object", old, new):
            problems += self._compare_objects(old, new, path)
        if _may_be("array", old, new):
            problems += self._compare_arrays(old, new, path)
        return problems

    def _compare_types(self, old: JsonSchema, new: JsonSchema, path: str) -> list[str]:
        old_types, new_types = _types(old), _types(new)
        if new_types is None:
            return []
        if old_types is None:
            return [f"{path}: type restricted to {' | '.join(sorted(new_types))}"]
        lost = sorted(t for t in old_types if not _type_accepts(new_types, t))
        if lost:
            return [
                f"{path}: type changed from {' | '.join(sorted(old_types))} "
                f"to {' | '.join(sorted(new_types))} ({', '.join(lost)} no longer accepted)"
            ]
        return []

    def _compare_values(self, old: JsonSchema, new: JsonSchema, path: str) -> list[str]:
        new_values = _values(new)
        if new_values is None:
            return []
        old_values = _values(old)
        if old_values is None:
            return [f"{path}: restricted to {' | '.join(_canonical(v) for v in new_values)}"]
        allowed = {_canonical(v) for v in new_values}
        removed = [_canonical(v) for v in old_values if _canonical(v) not in allowed]
        if not removed:
            return []
        keyword = "const" if "const" in new and "enum" not in new else "enum"
        return [f"{path}: {keyword} no longer accepts {', '.join(removed)}"]

    def _compare_constraints(self, old: JsonSchema, new: JsonSchema, path: str) -> list[str]:
        problems: list[str] = []
        for keyword in ("pattern", "format", "contentEncoding", "contentMediaType"):
            if keyword in new and new[keyword] != old.get(keyword):
                was = f"{old[keyword]!r}" if keyword in old else "none"
                problems.append(f"{path}: {keyword} changed from {was} to {new[keyword]!r}")
        for keyword in _LOWER_BOUNDS:
            problems += _tightened(path, keyword, old.get(keyword), new.get(keyword), lower=True)
        for keyword in _UPPER_BOUNDS:
            problems += _tightened(path, keyword, old.get(keyword), new.get(keyword), lower=False)
        problems += _range(path, old, new, lower=True)
        problems += _range(path, old, new, lower=False)
        multiple_old, multiple_new = old.get("multipleOf"), new.get("multipleOf")
        if multiple_new is not None and (
            multiple_old is None or (multiple_old / multiple_new) % 1 != 0
        ):
            problems.append(f"{path}: multipleOf changed from {multiple_old} to {multiple_new}")
        if new.get("uniqueItems") is True and old.get("uniqueItems") is not True:
            problems.append(f"{path}: uniqueItems now required")
        return problems

    def _compare_objects(self, old: JsonSchema, new: JsonSchema, path: str) -> list[str]:
        problems: list[str] = []
        old_props: dict[str, Any] = old.get("properties", {})
        new_props: dict[str, Any] = new.get("properties", {})
        old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
        old_required = set(old.get("required", []))
        for name, old_prop in old_props.items():
            prop_path = f"{path}.{name}"
            if name in new_props:
                problems += self.compare(old_prop, new_props[name], prop_path)
            elif _is_false(new_extra):
                problems.append(
                    f"{prop_path}: property removed, and extra properties are forbidden "
                    "(old events carrying it are rejected)"
                )
            elif isinstance(new_extra, dict):
                problems += self.compare(old_prop, new_extra, prop_path)
        for name in sorted(set(new.get("required", [])) - old_required):
            if name in old_props:
                problems.append(f"{path}.{name}: became required (old events may lack it)")
            else:
                problems.append(f"{path}.{name}: new required property (old events lack it)")
        if new_extra is not None and new_extra is not True and not _is_false(old_extra):
            if _is_false(new_extra):
                problems.append(f"{path}: additional properties now forbidden")
            elif isinstance(old_extra, dict):
                problems += self.compare(old_extra, new_extra, f"{path}.*")
            else:
                problems += self.compare({}, new_extra, f"{path}.*")
        return problems

    def _compare_arrays(self, old: JsonSchema, new: JsonSchema, path: str) -> list[str]:
        problems: list[str] = []
        old_prefix: list[Any] = old.get("prefixItems", [])
        new_prefix: list[Any] = new.get("prefixItems", [])
        for index, new_item in enumerate(new_prefix):
            old_item = old_prefix[index] if index < len(old_prefix) else old.get("items", {})
            problems += self.compare(old_item, new_item, f"{path}[{index}]")
        if "items" in new:
            # Old tuple positions beyond the new prefix now fall under the new `items`.
            for index in range(len(new_prefix), len(old_prefix)):
                problems += self.compare(old_prefix[index], new["items"], f"{path}[{index}]")
            problems += self.compare(old.get("items", {}), new["items"], f"{path}[]")
        return problems


def _tightened(path: str, keyword: str, old: Any, new: Any, *, lower: bool) -> list[str]:
    if new is None:
        return []
    if old is None or (new > old if lower else new < old):
        return [f"{path}: {keyword} tightened from {old} to {new}"]
    return []


def _range(path: str, old: JsonSchema, new: JsonSchema, *, lower: bool) -> list[str]:
    """Compare numeric bounds, inclusive (`minimum`) and exclusive (`exclusiveMinimum`)."""
    inclusive, exclusive = (
        ("minimum", "exclusiveMinimum") if lower else ("maximum", "exclusiveMaximum")
    )
    old_bound, new_bound = (
        _bound(old, inclusive, exclusive, lower),
        _bound(new, inclusive, exclusive, lower),
    )
    if new_bound is None:
        return []
    name = "lower bound" if lower else "upper bound"
    shown_new = f"{new_bound[0]} ({'exclusive' if new_bound[1] else 'inclusive'})"
    if old_bound is None:
        return [f"{path}: {name} added: {shown_new}"]
    (old_value, old_excl), (new_value, new_excl) = old_bound, new_bound
    tighter = new_value > old_value if lower else new_value < old_value
    if tighter or (new_value == old_value and new_excl and not old_excl):
        shown_old = f"{old_value} ({'exclusive' if old_excl else 'inclusive'})"
        return [f"{path}: {name} tightened from {shown_old} to {shown_new}"]
    return []


def _bound(
    schema: JsonSchema, inclusive: str, exclusive: str, lower: bool
) -> tuple[float, bool] | None:
    """The tightest bound of one side: (value, exclusive?)."""
    candidates: list[tuple[float, bool]] = []
    if isinstance(schema.get(inclusive), int | float):
        candidates.append((schema[inclusive], False))
    if isinstance(schema.get(exclusive), int | float) and not isinstance(
        schema.get(exclusive), bool
    ):
        candidates.append((schema[exclusive], True))
    if not candidates:
        return None
    # Lower side: the largest value wins, exclusive beats inclusive on a tie; upper: mirrored.
    if lower:
        return max(candidates, key=lambda c: (c[0], c[1]))
    return min(candidates, key=lambda c: (c[0], not c[1]))
