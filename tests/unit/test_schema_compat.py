"""Backward compatibility of the event schemas, and the checked-in JSON Schema files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from schemas.compat import EXPORT_COMMAND, breaking_changes, check_directory
from schemas.events import EVENT_TYPES
from schemas.export import export, json_schemas, render, schema_id

CHECKED_IN = Path(__file__).resolve().parents[2] / "schemas" / "json"

Schema = dict[str, Any]


def obj(props: Schema, required: list[str] | None = None, *, extra: Any = False) -> Schema:
    """An object schema the way pydantic writes one for an `extra="forbid"` model."""
    schema: Schema = {"type": "object", "properties": props, "required": required or []}
    if extra is not None:
        schema["additionalProperties"] = extra
    return schema


def one(changes: list[str], *needles: str) -> None:
    """Exactly one breaking change, mentioning all `needles`."""
    assert len(changes) == 1, changes
    for needle in needles:
        assert needle in changes[0], changes


STRING: Schema = {"type": "string"}
OPTIONAL_STRING: Schema = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}


# --- compatible changes -----------------------------------------------------------------


def test_identical_schemas_are_compatible() -> None:
    for ce_type, schema in json_schemas().items():
        assert breaking_changes(schema, copy.deepcopy(schema)) == [], ce_type


def test_new_optional_field_is_compatible() -> None:
    old = obj({"a": STRING}, ["a"])
    new = obj({"a": STRING, "b": OPTIONAL_STRING}, ["a"])
    assert breaking_changes(old, new) == []


def test_widened_enum_is_compatible() -> None:
    old = obj({"k": {"type": "string", "enum": ["x", "y"]}})
    new = obj({"k": {"type": "string", "enum": ["x", "y", "z"]}})
    assert breaking_changes(old, new) == []


def test_const_widened_to_enum_is_compatible() -> None:
    old = obj({"k": {"type": "string", "const": "x"}})
    new = obj({"k": {"type": "string", "enum": ["x", "y"]}})
    assert breaking_changes(old, new) == []


def test_added_anyof_branch_is_compatible() -> None:
    assert breaking_changes(obj({"a": STRING}), obj({"a": OPTIONAL_STRING})) == []
    three = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}
    assert breaking_changes(obj({"a": OPTIONAL_STRING}), obj({"a": three})) == []


def test_loosened_constraints_are_compatible() -> None:
    old = obj(
        {
            "s": {
                "type": "string",
                "minLength": 2,
                "maxLength": 10,
                "pattern": "^a",
                "format": "x",
            },
            "n": {"type": "integer", "minimum": 1, "exclusiveMaximum": 10},
        }
    )
    new = obj(
        {
            "s": {"type": "string", "minLength": 1, "maxLength": 20},
            "n": {"type": "number", "minimum": 0, "maximum": 10},
        }
    )
    assert breaking_changes(old, new) == []


def test_required_field_made_optional_is_compatible() -> None:
    assert breaking_changes(obj({"a": STRING}, ["a"]), obj({"a": STRING})) == []


def test_removed_property_is_compatible_when_extras_are_allowed() -> None:
    old = obj({"a": STRING, "b": STRING}, extra=None)
    assert breaking_changes(old, obj({"a": STRING}, extra=None)) == []
    assert breaking_changes(old, obj({"a": STRING}, extra=True)) == []
    typed = obj({"a": STRING, "b": STRING}, extra={"type": "string"})
    assert breaking_changes(typed, obj({"a": STRING}, extra={"type": "string"})) == []


def test_extras_no_longer_forbidden_is_compatible() -> None:
    assert breaking_changes(obj({"a": STRING}), obj({"a": STRING}, extra=None)) == []


def test_renamed_def_with_the_same_shape_is_compatible() -> None:
    point = obj({"lon": {"type": "number"}}, ["lon"])
    old = {**obj({"p": {"$ref": "#/$defs/Point"}}), "$defs": {"Point": point}}
    new = {**obj({"p": {"$ref": "#/$defs/Location"}}), "$defs": {"Location": point}}
    assert breaking_changes(old, new) == []


# --- breaking changes -------------------------------------------------------------------


def test_removed_property_breaks_when_extras_are_forbidden() -> None:
    changes = breaking_changes(obj({"a": STRING, "b": STRING}), obj({"a": STRING}))
    one(changes, "$.b", "removed")


def test_extras_restricted_to_a_schema_breaks() -> None:
    changes = breaking_changes(obj({"a": STRING}, extra=None), obj({"a": STRING}, extra=STRING))
    one(changes, "$.*", "type restricted to string")


def test_removed_property_breaks_when_the_extras_schema_rejects_it() -> None:
    old = obj({"a": STRING, "n": {"type": "integer"}})
    changes = breaking_changes(old, obj({"a": STRING}, extra={"type": "string"}))
    one(changes, "$.n", "type changed from integer to string")


def test_optional_field_becoming_required_breaks() -> None:
    old = obj({"a": STRING, "b": OPTIONAL_STRING}, ["a"])
    new = obj({"a": STRING, "b": OPTIONAL_STRING}, ["a", "b"])
    one(breaking_changes(old, new), "$.b", "became required")


def test_new_required_field_breaks() -> None:
    old = obj({"a": STRING}, ["a"])
    new = obj({"a": STRING, "b": STRING}, ["a", "b"])
    one(breaking_changes(old, new), "$.b", "new required property")


@pytest.mark.parametrize(
    ("old_type", "new_type"),
    [("string", "integer"), ("number", "integer"), ("integer", "boolean"), ("object", "array")],
)
def test_type_change_breaks(old_type: str, new_type: str) -> None:
    changes = breaking_changes(obj({"a": {"type": old_type}}), obj({"a": {"type": new_type}}))
    one(changes, "$.a", f"type changed from {old_type} to {new_type}")


def test_integer_widened_to_number_is_compatible() -> None:
    old, new = obj({"a": {"type": "integer"}}), obj({"a": {"type": "number"}})
    assert breaking_changes(old, new) == []


def test_type_added_to_an_unrestricted_field_breaks() -> None:
    one(breaking_changes(obj({"a": {}}), obj({"a": STRING})), "$.a", "type restricted")


def test_enum_value_removed_breaks() -> None:
    old = obj({"k": {"type": "string", "enum": ["x", "y", "z"]}})
    new = obj({"k": {"type": "string", "enum": ["x", "z"]}})
    one(breaking_changes(old, new), "$.k", '"y"')


def test_enum_added_to_a_free_string_breaks() -> None:
    new = obj({"k": {"type": "string", "enum": ["x"]}})
    one(breaking_changes(obj({"k": STRING}), new), "$.k", "restricted to")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"const": "x", "type": "string"}, {"const": "y", "type": "string"}),
        ({"enum": ["x", "y"], "type": "string"}, {"const": "x", "type": "string"}),
    ],
)
def test_const_narrowed_breaks(old: Schema, new: Schema) -> None:
    one(breaking_changes(obj({"k": old}), obj({"k": new})), "$.k", "no longer accepts")


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ({"pattern": "^a"}, {"pattern": "^b"}, "pattern changed"),
        ({}, {"pattern": "^a"}, "pattern changed from none"),
        ({}, {"format": "date-time"}, "format changed"),
        ({"format": "date"}, {"format": "date-time"}, "format changed"),
        ({}, {"minLength": 1}, "minLength tightened"),
        ({"minLength": 1}, {"minLength": 2}, "minLength tightened"),
        ({"maxLength": 10}, {"maxLength": 5}, "maxLength tightened"),
        ({}, {"maxLength": 5}, "maxLength tightened"),
    ],
)
def test_string_constraint_tightened_breaks(old: Schema, new: Schema, needle: str) -> None:
    changes = breaking_changes(obj({"s": {"type": "string", **old}}), obj({"s": {**new, **STRING}}))
    one(changes, "$.s", needle)


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ({"minimum": 1}, {"minimum": 2}, "lower bound tightened"),
        ({}, {"minimum": 0}, "lower bound added"),
        ({"minimum": 1}, {"exclusiveMinimum": 1}, "lower bound tightened"),
        ({"maximum": 5}, {"maximum": 4}, "upper bound tightened"),
        ({"maximum": 5}, {"exclusiveMaximum": 5}, "upper bound tightened"),
        ({}, {"exclusiveMaximum": 5}, "upper bound added"),
        ({"multipleOf": 2}, {"multipleOf": 3}, "multipleOf"),
    ],
)
def test_numeric_bound_tightened_breaks(old: Schema, new: Schema, needle: str) -> None:
    num = {"type": "integer"}
    changes = breaking_changes(obj({"n": {**num, **old}}), obj({"n": {**num, **new}}))
    one(changes, "$.n", needle)


def test_anyof_branch_removed_breaks() -> None:
    # Optional[str] → str: old events with null are rejected.
    one(breaking_changes(obj({"a": OPTIONAL_STRING}), obj({"a": STRING})), "$.a", "null")
    three = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}
    one(breaking_changes(obj({"a": three}), obj({"a": OPTIONAL_STRING})), "integer")


def test_narrowed_anyof_branch_reports_the_narrowing() -> None:
    old = obj({"a": {"anyOf": [{"type": "string", "maxLength": 10}, {"type": "null"}]}})
    new = obj({"a": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]}})
    one(breaking_changes(old, new), "$.a", "maxLength tightened from 10 to 5")


def test_extras_newly_forbidden_breaks() -> None:
    changes = breaking_changes(obj({"a": STRING}, extra=None), obj({"a": STRING}))
    one(changes, "additional properties now forbidden")


def test_array_items_narrowed_breaks() -> None:
    old = obj({"xs": {"type": "array", "items": {"type": "number"}}})
    new = obj({"xs": {"type": "array", "items": {"type": "integer"}}})
    one(breaking_changes(old, new), "$.xs[]", "type changed")


def test_nested_change_through_ref_is_found() -> None:
    old_point = obj({"lon": {"type": "number", "maximum": 180}}, ["lon"])
    new_point = obj({"lon": {"type": "number", "maximum": 90}}, ["lon"])
    old = {**obj({"p": {"$ref": "#/$defs/Point"}}), "$defs": {"Point": old_point}}
    new = {**obj({"p": {"$ref": "#/$defs/Point"}}), "$defs": {"Point": new_point}}
    one(breaking_changes(old, new), "$.p.lon", "upper bound tightened")


def test_ref_inside_optional_is_resolved() -> None:
    def schema(roles: list[str]) -> Schema:
        ref = {"anyOf": [{"$ref": "#/$defs/Role"}, {"type": "null"}]}
        return {**obj({"role": ref}), "$defs": {"Role": {"type": "string", "enum": roles}}}

    one(breaking_changes(schema(["a", "b"]), schema(["a"])), "$.role", '"b"')
    assert breaking_changes(schema(["a"]), schema(["a", "b"])) == []


# --- with real pydantic models ----------------------------------------------------------


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^\d{4}$")


class InnerV2(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Inner")
    code: str = Field(pattern=r"^\d{5}$")


class V1(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: str
    kind: Literal["component", "event"]
    note: str | None = None
    inner: Inner


class V2Compatible(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: str
    kind: Literal["component", "event", "other"]
    note: str | None = None
    inner: Inner
    extra_note: str | None = None


class V2Breaking(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: str
    kind: Literal["component"]
    note: str
    inner: InnerV2
    priority: int


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    children: list[Node] = []
    parent: Node | None = None


def test_pydantic_compatible_evolution() -> None:
    old, new = V1.model_json_schema(), V2Compatible.model_json_schema()
    assert breaking_changes(old, new) == []


def test_pydantic_breaking_evolution() -> None:
    changes = breaking_changes(V1.model_json_schema(), V2Breaking.model_json_schema())
    assert sorted(changes) == sorted(
        [
            '$.kind: const no longer accepts "event"',
            "$.note: no longer accepts null",
            "$.note: became required (old events may lack it)",
            "$.inner.code: pattern changed from '^\\\\d{4}$' to '^\\\\d{5}$'",
            "$.priority: new required property (old events lack it)",
        ]
    )


def test_recursive_models_terminate() -> None:
    schema = Node.model_json_schema()
    assert breaking_changes(schema, copy.deepcopy(schema)) == []
    narrowed = copy.deepcopy(schema)
    narrowed["$defs"]["Node"]["properties"]["name"]["maxLength"] = 3
    assert any("$.name: maxLength" in c for c in breaking_changes(schema, narrowed))


# --- export and the checked-in files ----------------------------------------------------


def test_export_writes_one_deterministic_file_per_type(tmp_path: Path) -> None:
    paths = export(tmp_path / "json")
    assert sorted(p.name for p in paths) == sorted(f"{t}.json" for t in EVENT_TYPES)
    first = {p.name: p.read_bytes() for p in paths}
    export(tmp_path / "json")
    assert {p.name: p.read_bytes() for p in paths} == first
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n")
        schema = json.loads(text)
        assert text == json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        ce_type = path.name.removesuffix(".json")
        assert schema["$id"] == schema_id(ce_type)
        assert schema["title"] == ce_type
        assert schema["additionalProperties"] is False


def test_json_schemas_cover_every_event_type() -> None:
    assert set(json_schemas()) == set(EVENT_TYPES)


def test_check_directory_reports_stale_and_breaking(tmp_path: Path) -> None:
    export(tmp_path)
    current = json_schemas()
    assert check_directory(tmp_path, current).ok

    changed = copy.deepcopy(current)
    # compatible: a new optional field → stale
    changed["gridloop.case.closed"]["properties"]["note"] = OPTIONAL_STRING
    # breaking: a new required field
    changed["gridloop.case.filed"]["properties"]["priority"] = {"type": "integer"}
    changed["gridloop.case.filed"]["required"].append("priority")
    # a new type → stale; a removed type → breaking
    changed["gridloop.case.teleported"] = obj({"case_id": STRING}, ["case_id"])
    del changed["gridloop.case.parked"]
    (tmp_path / "gridloop.sla.warning.json").write_text("{oops", encoding="utf-8")

    result = check_directory(tmp_path, changed)

    assert not result.ok
    breaking = sorted(result.breaking)
    assert len(breaking) == 3, breaking
    assert breaking[0].startswith("gridloop.case.filed: $.priority: new required property")
    assert breaking[1].startswith("gridloop.case.parked: event type disappeared")
    assert breaking[2].startswith("gridloop.sla.warning: gridloop.sla.warning.json is not valid")
    stale = sorted(result.stale)
    assert len(stale) == 2, stale
    assert stale[0].startswith("gridloop.case.closed: compatible change")
    assert stale[1].startswith("gridloop.case.teleported: new event type")
    assert EXPORT_COMMAND in result.summary()


def test_check_directory_flags_formatting_drift_as_stale(tmp_path: Path) -> None:
    export(tmp_path)
    path = tmp_path / "gridloop.case.closed.json"
    path.write_text(json.dumps(json.loads(path.read_text(encoding="utf-8"))), encoding="utf-8")
    result = check_directory(tmp_path)
    assert result.breaking == []
    assert result.stale == [
        "gridloop.case.closed: compatible change, gridloop.case.closed.json is out of date"
    ]


def test_render_is_key_sorted_with_trailing_newline() -> None:
    assert render({"b": 1, "a": {"d": 2, "c": "é"}}) == (
        '{\n  "a": {\n    "c": "é",\n    "d": 2\n  },\n  "b": 1\n}\n'
    )


def test_checked_in_schemas_match_the_models() -> None:
    result = check_directory(CHECKED_IN)
    assert result.breaking == [], (
        "event schema changes would make events already in Kafka unreadable:\n" + result.summary()
    )
    assert result.stale == [], (
        f"schemas/json is out of date; run `{EXPORT_COMMAND}` and commit the result:\n"
        + result.summary()
    )
