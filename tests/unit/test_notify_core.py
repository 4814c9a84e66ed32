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
from gridloop.medialinks import LinkSigner
from schemas.envelope import Envelope
from schemas.events import CaseDispatched
from schemas.webhooks import validate
from services.notify.core import (
    Telling,
    dispatched_message,
    encode_body,
    notices,
    signed_headers,
)
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
    "case_number": "B0101-20250301-0001",
    "urgency": "urgent",
    "media": ["0123456789abcdef01234567"],
}
CASE = CaseRecord.model_validate(CASE_DOC)


MEDIA = "0123456789abcdef01234567"
PACK = load_city_pack(DEMO_CITY_PACK)
SIGNER = LinkSigner(b"k" * 32, "https://city.example/v1", timedelta(days=7))
TELLING = Telling(PACK, SIGNER)


def _secret(department: str = "WATER") -> str:
    hook = PACK.departments[department].webhook
    assert hook is not None
    return hook.secret


def _env(assumed_years: tuple[int, ...] = (), assisting: tuple[str, ...] = ()) -> Envelope:
    data = sample_of(
        CaseDispatched,
        version=3,
        department="WATER",
        deadline=DEADLINE,
        rule="default owner",
        basis="class_default",
        assisting=list(assisting),
        assumed_years=list(assumed_years),
    )
    return Envelope(data=data, source=SOURCE, time=TIME)


def _told(env: Envelope, case: CaseRecord = CASE) -> list[dict[str, Any]]:
    return [n.message for n in notices(env, case, TELLING, TIME)]


def _body() -> str:
    return encode_body(_told(_env())[0])


# --- the message ---------------------------------------------------------------------------


def test_the_dispatch_says_what_where_by_when_and_who_leads_without_a_second_call() -> None:
    message = _told(_env())[0]
    assert set(message) == {"type", "timestamp", "data"}
    assert message["type"] == "case.dispatched"
    assert datetime.fromisoformat(message["timestamp"]) == TIME
    link = SIGNER.link(MEDIA, "WATER", TIME)
    assert link.expires_at == (TIME + timedelta(days=7)).replace(microsecond=0)
    assert message["data"] == {
        "case_id": CASE_ID,
        "case_number": "B0101-20250301-0001",
        "version": 3,
        "department": "WATER",
        "role": "lead",
        "assisting": [],
        "deadline": DEADLINE.isoformat(),
        "assumed_years": [],
        "basis": "class_default",
        "rule": "default owner",
        "kind": "component",
        "class_code": "0101",
        "class_name": "上水井盖 water manhole cover",
        "urgency": "urgent",
        "description": "井盖破损 manhole cover broken",
        "point": {"type": "Point", "coordinates": [116.4015, 39.9205]},
        "address": None,
        "landmark": {
            "name": "路灯 东华门大街 street lamp",
            "component_id": "1101010118000001",
            "distance_m": 51,  # 0.0003° east (26 m), 0.0004° south (44 m)
        },
        "grid_code": "110101001001002",
        "grid_name": "网格 002",
        "street": "东华门街道 Donghuamen",
        "media": [{"media_id": MEDIA, "url": link.url, "expires_at": link.expires_at.isoformat()}],
    }
    assert link.url.startswith(f"https://city.example/v1/media/{MEDIA}/signed?department=WATER&")
    validate(message)  # the model docs/departments.md documents


def test_each_department_of_a_joint_case_is_told_its_role_and_gets_its_own_links() -> None:
    lead, assisting = _told(_env(assisting=("SANITATION",)))
    assert (lead["data"]["role"], assisting["data"]["role"]) == ("lead", "assisting")
    assert assisting["data"]["department"] == "WATER"  # who leads
    assert "department=SANITATION" in assisting["data"]["media"][0]["url"]
    assert lead["data"]["media"][0]["url"] != assisting["data"]["media"][0]["url"]


def test_the_address_given_and_the_component_reported_are_the_place() -> None:
    case = CaseRecord.model_validate(
        CASE_DOC | {"address": "多福巷1号", "component_id": "1101010101000001"}
    )
    data = _told(_env(), case)[0]["data"]
    assert data["address"] == "多福巷1号"
    assert data["landmark"]["component_id"] == "1101010101000001"  # its own, not the nearest


def test_the_supervisors_photos_of_the_verification_are_linked_too() -> None:
    verified = "fedcba9876543210fedcba98"
    entry = {"event_id": "e-2", "type": "verified", "version": 2, "at": TIME}
    case = CaseRecord.model_validate(
        CASE_DOC | {"timeline": [entry | {"data": {"media": [verified]}}]}
    )
    media = _told(_env(), case)[0]["data"]["media"]
    assert [m["media_id"] for m in media] == [MEDIA, verified]


def test_a_deadline_reckoned_in_an_unsupplied_year_is_flagged_to_the_department() -> None:
    data = _told(_env(assumed_years=(2027,)))[0]["data"]
    assert data["assumed_years"] == [2027]
    assert data["deadline"] == DEADLINE.isoformat()


def test_message_of_a_case_not_yet_projected() -> None:
    bare = CaseRecord.model_validate({"_id": CASE_ID, "state": "dispatched", "version": 3})
    data = _told(_env(), bare)[0]["data"]
    assert data["point"] is None
    assert data["kind"] is None
    assert data["landmark"] is None
    assert data["media"] == []
    assert data["department"] == "WATER"
    validate(_told(_env(), bare)[0])


def test_without_a_signer_no_links_are_made() -> None:
    data = notices(_env(), CASE, Telling(PACK), TIME)[0].message["data"]
    assert data["media"] == []


def test_message_refuses_other_event_types() -> None:
    other = Envelope(data=sample("gridloop.case.handled"), source=SOURCE, time=TIME)
    with pytest.raises(AssertionError):
        dispatched_message(other, {})


def test_body_is_compact_sorted_utf8_json() -> None:
    body = _body()
    assert json.loads(body) == _told(_env())[0]
    assert "井盖" in body  # not \\u-escaped
    assert ", " not in body
    assert ": " not in body
    assert body.index('"data"') < body.index('"timestamp"') < body.rindex('"type"')
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
