"""How the grid service passes intake's answer on when it reports a finding: a refusal as
intake said it (field, reason, code), anything else as a 503 the handheld may retry."""

from __future__ import annotations

import httpx
import pytest

from gridloop.embedded import free_port
from gridloop.refusal import Refused, Why
from services.grid.intake_client import IntakeClient, passed_on


def _answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body)


def test_intakes_refusal_is_passed_on_as_intake_said_it() -> None:
    body = {"detail": [{"loc": ["body", "class_code"], "msg": "no class 9999", "type": "unknown"}]}
    refused = passed_on(_answer(422, body))
    assert (refused.why, refused.loc, refused.code) == (
        Why.invalid,
        ("body", "class_code"),
        "unknown",
    )
    assert refused.reason == "intake: no class 9999"
    assert passed_on(_answer(403, body)).why is Why.forbidden


def test_a_refusal_without_intakes_shape_still_says_what_it_was() -> None:
    refused = passed_on(httpx.Response(409, text="busy"))
    assert (refused.why, refused.loc) == (Why.conflict, ("body",))


@pytest.mark.parametrize("status", [500, 502, 503])
def test_intake_failing_is_a_503_to_retry(status: int) -> None:
    refused = passed_on(_answer(status, {}))
    assert (refused.why, refused.code) == (Why.unavailable, "intake_unavailable")


async def test_intake_not_listening_is_a_503_to_retry() -> None:
    client = IntakeClient(f"http://127.0.0.1:{free_port()}", timeout=2.0)
    with pytest.raises(Refused) as caught:
        await client.report({}, "glk_x", "visit-v-finding-0")
    assert (caught.value.why, caught.value.code) == (Why.unavailable, "intake_unavailable")
