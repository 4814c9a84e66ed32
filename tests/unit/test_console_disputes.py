"""The console's dispute desk: forms to dispatch's bodies, and its refusals beside the
fields they name."""

from __future__ import annotations

import httpx

from services.console.disputes import FIELDS, action_body
from services.console.kit import refused


def test_each_form_becomes_its_body() -> None:
    blank = {"reason": " ", "explanation": "", "note": "", "unconfirmed_reason": ""}
    assert action_body("escalate", blank | {"reason": " 超出权限 "}, []) == {"reason": "超出权限"}
    assert action_body("escalate", blank, []) == {"reason": ""}  # the API names it
    assert action_body("explanation", blank | {"explanation": "x"}, []) == {"explanation": "x"}
    sides = ["applicant", "respondent", "nobody"]
    assert action_body("confirm", blank, sides) == {
        "parties": [{"side": "applicant"}, {"side": "respondent"}]
    }
    assert action_body("close", blank, []) == {}
    why = blank | {"unconfirmed_reason": "搬走了"}
    assert action_body("close", why, []) == {"unconfirmed_reason": "搬走了"}


def test_a_refusal_is_shown_beside_its_field() -> None:
    detail = [{"loc": ["body", "unconfirmed_reason"], "msg": "confirm first", "type": "x"}]
    answer = httpx.Response(422, json={"detail": detail})
    assert refused(answer, FIELDS) == {"unconfirmed_reason": "confirm first"}
    nested = [{"loc": ["body", "parties", 0, "side"], "msg": "bad side", "type": "enum"}]
    assert refused(httpx.Response(422, json={"detail": nested}), FIELDS) == {"parties": "bad side"}
    elsewhere = [{"loc": ["case_id"], "msg": "the grid holds this dispute", "type": "forbidden"}]
    assert refused(httpx.Response(403, json={"detail": elsewhere}), FIELDS) == {
        "action": "the grid holds this dispute"
    }
    assert refused(httpx.Response(503, text="down"), FIELDS) == {"action": "503"}
    assert refused(httpx.Response(502, json=["not", "a", "refusal"]), FIELDS) == {"action": "502"}
    blank = [{"loc": ["body", "parties"], "msg": "Field required", "type": "missing"}]
    assert refused(httpx.Response(422, json={"detail": blank}), FIELDS) == {"parties": "missing"}
