"""Who is told what, key rotation, the retry schedule, answers, Retry-After, SSRF checks."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from gridloop.cases.record import CaseRecord
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from schemas.envelope import Envelope
from schemas.events import EventData
from services.notify.addresses import Pinned, address_problem, pinned, url_problem
from services.notify.core import (
    SPEC_SCHEDULE,
    Notice,
    RetrySchedule,
    Telling,
    encode_body,
    notices,
    retry_after_seconds,
    signed_headers,
    verdict,
    webhook_id,
)
from services.notify.service import resolve
from tests.samples import CASE_ID, DEADLINE, SOURCE, TIME, sample

CASE_DOC = CaseRecord.model_validate(
    {
        "_id": CASE_ID,
        "department": "SANITATION",
        "kind": "event",
        "state": "dispatched",
        "version": 3,
    }
)
TELLING = Telling(load_city_pack(DEMO_CITY_PACK))
OLD = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
NEW = "whsec_" + "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="


def env(data: EventData) -> Envelope:
    return Envelope(data=data, source=SOURCE, time=TIME)


def tell(event: Envelope) -> list[Notice]:
    return notices(event, CASE_DOC, TELLING, TIME)


# --- notices ------------------------------------------------------------------------------


def test_a_joint_case_notifies_the_lead_and_every_assisting_department() -> None:
    dispatched = sample(
        "gridloop.case.dispatched", department="WATER", assisting=["SANITATION", "ROADS"]
    )
    found = tell(env(dispatched))
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
    [notice] = tell(env(sample(ce_type)))
    assert notice.department == department
    assert notice.message["type"] == ce_type.removeprefix("gridloop.")
    assert notice.message["data"]["case_id"] == sample(ce_type).case_id
    assert wanted.items() <= notice.message["data"].items()


def test_the_resume_message_tells_the_moved_deadline() -> None:
    """Issue 19: the department learns when the resumed case is due, as on a dispatch."""
    moved = DEADLINE + timedelta(hours=1)
    resumed = sample("gridloop.case.resumed", deadline=moved, assumed_years=[2027])
    [notice] = tell(env(resumed))
    assert notice.message["data"]["deadline"] == moved.isoformat()
    assert notice.message["data"]["assumed_years"] == [2027]
    [plain] = tell(env(sample("gridloop.case.resumed")))
    assert plain.message["data"]["deadline"] is None  # none known: none told


def test_an_escalation_goes_to_the_department_named_to_be_notified() -> None:
    nobody = sample("gridloop.sla.escalation", notify_department=None)
    assert tell(env(nobody)) == []
    named = sample("gridloop.sla.escalation", notify_department="STREET-001")
    [notice] = tell(env(named))
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
    assert tell(env(sample(ce_type))) == []


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
        "::1",
        "fd00::1",
        "fec0::1",  # site-local, deprecated
        "::ffff:127.0.0.1",
        "100.64.0.1",
        # Spellings of private and loopback addresses in IPv6.
        "::ffff:7f00:1",  # IPv4-mapped 127.0.0.1, in hex
        "::10.0.0.1",  # IPv4-compatible
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b:1::c0a8:5",  # local-use NAT64 of 192.168.0.5
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:c0a8:5::1",  # 6to4 of 192.168.0.5
        "fe80::0:5efe:a00:1",  # ISATAP of 10.0.0.1 (link-local itself: never)
    ],
)
def test_private_addresses_are_refused_unless_allowed(address: str) -> None:
    problem = address_problem([address], allow_private=False)
    assert problem is not None and "private" in problem
    if not address.startswith("fe80"):
        assert address_problem([address], allow_private=True) is None


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # the cloud metadata service
        "169.254.0.1",
        "fe80::1",
        "fe80::1%eth0",
        "febf::1",  # the top of fe80::/10
        "::ffff:169.254.169.254",
        "::ffff:a9fe:a9fe",
        "::169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::",  # 6to4
        "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254 (obfuscated)
        "2001:db8::5efe:a9fe:a9fe",  # ISATAP
    ],
)
def test_link_local_is_never_reached_not_even_where_private_addresses_are(address: str) -> None:
    problem = address_problem([address], allow_private=True)
    assert problem is not None and "link-local" in problem
    # One such address among good ones spoils the host: the delivery may pick any.
    assert address_problem(["93.184.216.34", address], allow_private=True) is not None


def test_embedded_public_addresses_are_judged_as_themselves() -> None:
    # NAT64 and IPv4-mapped spellings of a public address are that address.
    assert address_problem(["64:ff9b::5db8:d822"], allow_private=False) is None
    assert address_problem(["::ffff:93.184.216.34"], allow_private=False) is None
    # 6to4 reaches what it carries through a relay: of a private address, refused.
    problem = address_problem(["2002:a00:1::1"], allow_private=False)
    assert problem is not None and "carries" in problem and "10.0.0.1" in problem


def test_public_addresses_pass_and_some_never_do() -> None:
    assert address_problem(["93.184.216.34", "2606:2800:220:1::1"], allow_private=False) is None
    assert address_problem(["93.184.216.34", "10.0.0.1"], allow_private=False) is not None
    for never in ("0.0.0.0", "0.1.2.3", "224.0.0.1", "240.0.0.1", "::", "ff02::1"):
        assert address_problem([never], allow_private=True) is not None
    assert address_problem([], allow_private=True) == "the host does not resolve"


def test_a_delivery_is_pinned_to_the_checked_address_with_the_url_s_own_names() -> None:
    assert pinned("https://hooks.dept.example:8443/in?x=1", "93.184.216.34") == Pinned(
        "https://93.184.216.34:8443/in?x=1", "hooks.dept.example:8443", "hooks.dept.example"
    )
    assert pinned("http://Hooks.Example/in", "2606:2800:220:1::1") == Pinned(
        "http://[2606:2800:220:1::1]/in",
        "hooks.example",
        None,  # no TLS, no server name
    )
    assert pinned("https://例子.example/h", "93.184.216.34").host == "xn--fsqu00a.example"
    # A URL naming an address is sent as it is.
    assert pinned("http://[::1]:9/h", "::1") == Pinned("http://[::1]:9/h", None, None)


def test_an_address_written_as_one_is_not_asked_of_the_resolver() -> None:
    async def resolved() -> tuple[list[str], list[str]]:
        loop = asyncio.get_running_loop()

        async def asked(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"the resolver was asked for {args[0]}")

        loop.getaddrinfo = asked  # type: ignore[method-assign]
        return await resolve("127.0.0.1", 80), await resolve("::1", None)

    assert asyncio.run(resolved()) == (["127.0.0.1"], ["::1"])


def test_a_name_is_asked_of_the_resolver_at_each_attempt() -> None:
    found = asyncio.run(resolve("localhost", 80))
    assert found and set(found) <= {"127.0.0.1", "::1"}
