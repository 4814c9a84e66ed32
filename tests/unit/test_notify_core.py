"""Webhook messages for departments, Standard Webhooks signatures, retry backoff."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from gridloop.cases.record import CaseRecord
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from schemas.envelope import Envelope
from schemas.events import CaseDispatched
from services.notify.core import dispatched_message, encode_body, signed_headers
from tests.samples import CASE_ID, DEADLINE, SOURCE, TIME, sample, sample_of

WEBHOOK_ID = "3f2a6c1e-0d7b-5b8e-9a51-2c4d6e8f0a1b"
CASE_DOC: dict[str, Any] = {
    "_id": CASE_ID,
    "kind": "component",
    "class_code": "0101",
    "grid_code": "110101001001002",
    "point": {"type": "Point", "coordinates": [116.4015, 39.9205]},
    "description": "井盖破损 manhole cover broken",
    "state": "dispatched",
    "version": 3,
}
CASE = CaseRecord.model_validate(CASE_DOC)


def _secret(department: str = "WATER") -> str:
    hook = load_city_pack(DEMO_CITY_PACK).departments[department].webhook
    assert hook is not None
    return hook.secret


def _env(assumed_years: tuple[int, ...] = ()) -> Envelope:
    data = sample_of(
        CaseDispatched,
        version=3,
        department="WATER",
        deadline=DEADLINE,
        rule="default owner",
        assumed_years=list(assumed_years),
    )
    return Envelope(data=data, source=SOURCE, time=TIME)


def _body() -> str:
    return encode_body(dispatched_message(_env(), CASE))


# --- the message ---------------------------------------------------------------------------


def test_message_has_type_timestamp_and_case_data() -> None:
    message = dispatched_message(_env(), CASE)
    assert set(message) == {"type", "timestamp", "data"}
    assert message["type"] == "case.dispatched"
    assert datetime.fromisoformat(message["timestamp"]) == TIME
    assert message["data"] == {
        "case_id": CASE_ID,
        "version": 3,
        "department": "WATER",
        "deadline": DEADLINE.isoformat(),
        "rule": "default owner",
        "kind": "component",
        "class_code": "0101",
        "grid_code": "110101001001002",
        "point": {"lon": 116.4015, "lat": 39.9205},
        "description": "井盖破损 manhole cover broken",
    }


def test_a_deadline_reckoned_in_an_unsupplied_year_is_flagged_to_the_department() -> None:
    data = dispatched_message(_env(assumed_years=(2027,)), CASE)["data"]
    assert data["assumed_years"] == [2027]
    assert data["deadline"] == DEADLINE.isoformat()


def test_message_of_a_case_not_yet_projected() -> None:
    bare = CaseRecord.model_validate({"_id": CASE_ID, "state": "dispatched", "version": 3})
    data = dispatched_message(_env(), bare)["data"]
    assert data["point"] is None
    assert data["kind"] is None
    assert data["department"] == "WATER"


def test_message_refuses_other_event_types() -> None:
    other = Envelope(data=sample("gridloop.case.handled"), source=SOURCE, time=TIME)
    with pytest.raises(AssertionError):
        dispatched_message(other, CASE)


def test_body_is_compact_sorted_utf8_json() -> None:
    body = _body()
    assert json.loads(body) == dispatched_message(_env(), CASE)
    assert "井盖" in body  # not \\u-escaped
    assert ", " not in body
    assert ": " not in body
    assert body.index('"data"') < body.index('"timestamp"') < body.index('"type"')
    assert _body() == body  # the same message always encodes to the same bytes


# --- signatures ----------------------------------------------------------------------------


def test_signed_headers_verify_with_standardwebhooks() -> None:
    secret, body, now = _secret(), _body(), datetime.now(UTC)
    headers = signed_headers(secret, WEBHOOK_ID, now, body)
    assert headers["webhook-id"] == WEBHOOK_ID
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["content-type"] == "application/json"
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    assert Webhook(secret).verify(body.encode(), headers) == json.loads(body)


def test_tampered_body_fails_verification() -> None:
    secret, body = _secret(), _body()
    headers = signed_headers(secret, WEBHOOK_ID, datetime.now(UTC), body)
    tampered = body.replace('"department":"WATER"', '"department":"ROADS"')
    assert tampered != body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)


def test_another_departments_secret_fails_verification() -> None:
    body = _body()
    headers = signed_headers(_secret("WATER"), WEBHOOK_ID, datetime.now(UTC), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(_secret("ROADS")).verify(body, headers)


def test_a_different_webhook_id_fails_verification() -> None:
    secret, body = _secret(), _body()
    headers = signed_headers(secret, WEBHOOK_ID, datetime.now(UTC), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers | {"webhook-id": "another-id"})


def test_signature_is_stable_for_the_same_id_time_and_body() -> None:
    """A retry re-signs the same delivery: same id, and the same signature at the same time."""
    secret, body, now = _secret(), _body(), datetime.now(UTC)
    first = signed_headers(secret, WEBHOOK_ID, now, body)
    assert signed_headers(secret, WEBHOOK_ID, now, body) == first
    later = signed_headers(secret, WEBHOOK_ID, now + timedelta(seconds=2), body)
    assert later["webhook-id"] == first["webhook-id"]
    assert later["webhook-signature"] != first["webhook-signature"]


def test_signed_headers_verify_for_a_non_utc_time() -> None:
    secret, body = _secret(), _body()
    beijing = datetime.now(UTC).astimezone(timezone(timedelta(hours=8)))
    headers = signed_headers(secret, WEBHOOK_ID, beijing, body)
    Webhook(secret).verify(body, headers)
