"""Who is told what, key rotation, the retry schedule, answers, Retry-After, SSRF checks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from gridloop.cases.record import CaseRecord
from schemas.envelope import Envelope
from schemas.events import EventData
from services.notify.core import (
    SPEC_SCHEDULE,
    RetrySchedule,
    address_problem,
    encode_body,
    notices,
    retry_after_seconds,
    signed_headers,
    url_problem,
    verdict,
    webhook_id,
)
from tests.samples import DEADLINE, SOURCE, TIME, sample

CASE_DOC = CaseRecord.model_validate(
    {"_id": "C-1", "department": "SANITATION", "kind": "event", "state": "dispatched", "version": 3}
)
OLD = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
NEW = "whsec_" + "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="


def env(data: EventData) -> Envelope:
    return Envelope(data=data, source=SOURCE, time=TIME)


# --- notices ------------------------------------------------------------------------------


def test_a_joint_case_notifies_the_lead_and_every_assisting_department() -> None:
    dispatched = sample(
        "gridloop.case.dispatched", department="WATER", assisting=["SANITATION", "ROADS"]
    )
    found = notices(env(dispatched), CASE_DOC)
    assert [n.department for n in found] == ["WATER", "SANITATION", "ROADS"]
    assert [n.message["data"]["role"] for n in found] == ["lead", "assisting", "assisting"]
    assert all(n.message["type"] == "case.dispatched" for n in found)
    assert found[1].message["data"]["department"] == "WATER"  # who leads


@pytest.mark.parametrize(
    ("ce_type", "department", "wanted"),
    [
        ("gridloop.case.extended", "SANITATION", {"deadline": DEADLINE.isoformat()}),
        ("gridloop.case.parked", "SANITATION", {"request_id": None}),
        ("gridloop.case.resumed", "SANITATION", {}),
        ("gridloop.case.extension_denied", "SANITATION", {"request_id": "r-1"}),
        ("gridloop.case.parking_denied", "SANITATION", {"request_id": "r-2"}),
        ("gridloop.sla.breach", "sanitation", {"stage": "handle"}),
    ],
)
def test_decisions_and_breaches_reach_the_case_department(
    ce_type: str, department: str, wanted: dict[str, Any]
) -> None:
    [notice] = notices(env(sample(ce_type)), CASE_DOC)
    assert notice.department == department
    assert notice.message["type"] == ce_type.removeprefix("gridloop.")
    assert notice.message["data"]["case_id"] == sample(ce_type).case_id
    assert wanted.items() <= notice.message["data"].items()


def test_the_resume_message_tells_the_moved_deadline() -> None:
    """Issue 19: the department learns when the resumed case is due, as on a dispatch."""
    moved = DEADLINE + timedelta(hours=1)
    resumed = sample("gridloop.case.resumed", deadline=moved, assumed_years=[2027])
    [notice] = notices(env(resumed), CASE_DOC)
    assert notice.message["data"]["deadline"] == moved.isoformat()
    assert notice.message["data"]["assumed_years"] == [2027]
    [plain] = notices(env(sample("gridloop.case.resumed")), CASE_DOC)
    assert "deadline" not in plain.message["data"]  # none known: none told


def test_an_escalation_goes_to_the_department_named_to_be_notified() -> None:
    nobody = sample("gridloop.sla.escalation", notify_department=None)
    assert notices(env(nobody), CASE_DOC) == []
    named = sample("gridloop.sla.escalation", notify_department="STREET-001")
    [notice] = notices(env(named), CASE_DOC)
    assert (notice.department, notice.message["type"]) == ("STREET-001", "sla.escalation")
    assert notice.message["data"]["tier"] == "street"


@pytest.mark.parametrize(
    "ce_type",
    [
        "gridloop.case.handled",
        "gridloop.case.returned",
        "gridloop.case.filed",
        "gridloop.sla.warning",
    ],
)
def test_other_events_notify_nobody(ce_type: str) -> None:
    assert notices(env(sample(ce_type)), CASE_DOC) == []


def test_webhook_ids_are_stable_and_differ_per_department() -> None:
    assert webhook_id("e-1", "WATER") == webhook_id("e-1", "WATER")
    assert webhook_id("e-1", "WATER") != webhook_id("e-1", "ROADS")
    assert webhook_id("e-1", "WATER") != webhook_id("e-2", "WATER")
    assert webhook_id("e-1", "WATER").startswith("msg_")


# --- key rotation -------------------------------------------------------------------------


def test_during_rotation_both_the_old_and_the_new_secret_verify() -> None:
    body = encode_body({"type": "t", "timestamp": TIME.isoformat(), "data": {}})
    headers = signed_headers([NEW, OLD], "msg_1", datetime.now(UTC), body)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    Webhook(OLD).verify(body, headers)
    Webhook(NEW).verify(body, headers)
    after = signed_headers([NEW], "msg_1", datetime.now(UTC), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD).verify(body, after)
    with pytest.raises(ValueError):
        signed_headers([], "msg_1", datetime.now(UTC), body)


# --- the schedule -------------------------------------------------------------------------


def test_the_default_schedule_is_the_specs() -> None:
    schedule = RetrySchedule.parse(SPEC_SCHEDULE, jitter=0)
    assert schedule.delays == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert schedule.attempts == 8
    assert [schedule.next_delay(n) for n in range(1, 9)] == [
        5,
        300,
        1800,
        7200,
        18000,
        36000,
        36000,
        None,
    ]


def test_jitter_spreads_each_delay_within_its_bounds() -> None:
    schedule = RetrySchedule.parse("0,10,100", jitter=0.2)
    rng = random.Random(7)
    delays = [schedule.next_delay(1, rng=rng) for _ in range(200)]
    assert all(d is not None and 8 <= d <= 12 for d in delays)
    assert len({round(d or 0, 3) for d in delays}) > 50  # spread, not one value


def test_retry_after_is_a_floor_never_a_shortcut() -> None:
    schedule = RetrySchedule.parse("0,10,100", jitter=0)
    assert schedule.next_delay(1, retry_after=60) == 60
    assert schedule.next_delay(1, retry_after=2) == 10
    assert schedule.next_delay(1, retry_after=10**9) == 24 * 3600  # capped at a day
    assert schedule.next_delay(3, retry_after=5) is None  # exhausted all the same


@pytest.mark.parametrize("text", ["", "a,b", "0,-1", " , "])
def test_a_bad_schedule_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        RetrySchedule.parse(text)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (299, "delivered"),
        (301, "retry"),
        (400, "retry"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (410, "gone"),
        (None, "retry"),
    ],
)
def test_only_2xx_is_success_and_410_is_gone(status: int | None, expected: str) -> None:
    assert verdict(status) == expected


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert retry_after_seconds(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


# --- server-side request forgery ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.org/x", "scheme"),
        ("http:///nohost", "no host"),
        ("https://user:pw@example.org/", "credentials"),
    ],
)
def test_malformed_webhook_urls(url: str, problem: str) -> None:
    found = url_problem(url)
    assert found is not None and problem in found
    assert url_problem("https://dept.example.org/hooks") is None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.5",
        "172.16.0.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
    ],
)
def test_private_addresses_are_refused_unless_allowed(address: str) -> None:
    problem = address_problem([address], allow_private=False)
    assert problem is not None and "private" in problem
    assert address_problem([address], allow_private=True) is None


def test_public_addresses_pass_and_some_never_do() -> None:
    assert address_problem(["93.184.216.34", "2606:2800:220:1::1"], allow_private=False) is None
    assert address_problem(["93.184.216.34", "10.0.0.1"], allow_private=False) is not None
    for never in ("0.0.0.0", "224.0.0.1", "240.0.0.1"):
        assert address_problem([never], allow_private=True) is not None
    assert address_problem([], allow_private=True) == "the host does not resolve"
