"""docs/departments.md matches the webhook a department receives: its example is a valid
message of the payload model (`schemas/webhooks.py`), and every field of the model is in
the page's tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel

from schemas.webhooks import (
    DATA_OF,
    CaseFacts,
    DecisionData,
    DispatchedData,
    Landmark,
    MediaLink,
    SlaData,
    validate,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "departments.md"
EXAMPLE = "<!-- webhook example: case.dispatched -->"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _example() -> dict[str, object]:
    after = _section("Webhooks").split(EXAMPLE, 1)[1]
    found = re.match(r"\s*```json\n(.*?)\n```", after, re.S)
    assert found, f"no JSON block after {EXAMPLE}"
    message: dict[str, object] = json.loads(found.group(1))
    return message


def _documented() -> set[str]:
    """The field names in the first cells of the Webhooks section's tables."""
    rows = (line for line in _section("Webhooks").splitlines() if line.startswith("| `"))
    return {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}


def test_the_example_is_a_valid_dispatch_message() -> None:
    message = validate(_example())
    assert isinstance(message.data, DispatchedData)
    assert message.data.role == "lead"  # the promise the page makes
    data = _example()["data"]
    assert isinstance(data, dict)
    assert set(data) == set(DispatchedData.model_fields)  # every field shown


def test_every_field_of_every_message_is_documented() -> None:
    documented = _documented()
    models: list[type[BaseModel]] = [CaseFacts, DispatchedData, DecisionData, SlaData]
    fields = {name for model in models for name in model.model_fields}
    assert fields - documented == set()


def test_the_nested_fields_are_named_where_their_field_is_documented() -> None:
    rows = "\n".join(line for line in _section("Webhooks").splitlines() if line.startswith("|"))
    for model in (Landmark, MediaLink):
        for name in model.model_fields:
            assert f"`{name}`" in rows, f"{model.__name__}.{name} is not documented"


def test_every_type_the_page_lists_has_a_model() -> None:
    types = _section("Webhooks").split("Types:", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"`((?:case|sla)\.\w+)`", types)) == set(DATA_OF)
