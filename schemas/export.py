"""The event contract as JSON Schema files, one per CloudEvents type.

The files under `schemas/json/` are checked in: they are the contract as it was last
released, and `schemas.compat` compares them with the current models so that a change that
would make old events (kept in Kafka forever) unreadable is caught before it ships.

    python -m schemas.export schemas/json     # or: gridloop schemas export schemas/json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from schemas.events import EVENT_TYPES

JsonSchema = dict[str, Any]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_id(ce_type: str) -> str:
    """The `$id` of an event type's schema."""
    return f"urn:gridloop:event:{ce_type}"


def file_name(ce_type: str) -> str:
    """`gridloop.case.filed` → `gridloop.case.filed.json`."""
    return f"{ce_type}.json"


def json_schemas() -> dict[str, JsonSchema]:
    """ce_type → the JSON Schema of its data, as the pydantic model generates it."""
    schemas: dict[str, JsonSchema] = {}
    for ce_type, model in sorted(EVENT_TYPES.items()):
        schema = model.model_json_schema()
        schema["$schema"] = SCHEMA_DIALECT
        schema["$id"] = schema_id(ce_type)
        schema["title"] = ce_type
        schema["x-model"] = f"{model.__module__}.{model.__qualname__}"
        schemas[ce_type] = schema
    return schemas


def render(schema: JsonSchema) -> str:
    """The file content: pretty, key-sorted, UTF-8 text ending with a newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path) -> list[Path]:
    """Write `<ce_type>.json` for every event type into `directory`; return the paths.

    Files of event types that no longer exist are left alone on purpose: removing a type
    is a breaking change that `schemas.compat.check_directory` reports until someone
    deletes the file by hand.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for ce_type, schema in json_schemas().items():
        path = directory / file_name(ce_type)
        text = render(schema)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m schemas.export DIRECTORY", file=sys.stderr)
        return 2
    for path in export(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
