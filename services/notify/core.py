"""Webhook messages, signatures, the retry schedule and URL checks. Pure.

Standard Webhooks: `webhook-id` is stable across retries (derived from the event id and the
department), so a receiver can drop a repeated delivery; `webhook-signature` is `v1,` +
HMAC-SHA256 over `id.timestamp.body` with the department's `whsec_` secret — one signature
per current secret, space-separated, while a secret is being rotated.
"""

from __future__ import annotations

import ipaddress
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from standardwebhooks import Webhook

from gridloop.cases.record import CaseRecord
from schemas.envelope import Envelope
from schemas.events import (
    CaseDispatched,
    CaseExtended,
    CaseParked,
    CaseResumed,
    DepartmentRequest,
    ExtensionDenied,
    ParkingDenied,
    SlaBreach,
    SlaEscalation,
)

_WEBHOOK_NAMESPACE = uuid.UUID("5e0c7d1a-3b2f-4f6e-9a8d-7c6b5a4f3e2d")
# The Standard Webhooks schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
SPEC_SCHEDULE = "0,5,300,1800,7200,18000,36000,36000"
MAX_RETRY_AFTER = 24 * 3600.0


# --- who is told what ------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """One message for one department."""

    department: str
    message: dict[str, Any]


def _case_facts(case: CaseRecord) -> dict[str, Any]:
    point = case.point.coordinates if case.point else None
    return {
        "kind": case.kind,
        "class_code": case.class_code,
        "grid_code": case.grid_code,
        "point": {"lon": point[0], "lat": point[1]} if point else None,
        "description": case.description,
    }


def _message(env: Envelope, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": env.type.removeprefix("gridloop."),
        "timestamp": env.time.isoformat(),
        "data": data,
    }


def dispatched_message(env: Envelope, case: CaseRecord, role: str = "lead") -> dict[str, Any]:
    """The payload `{type, timestamp, data}` for a department: what, where, by when."""
    data = env.data
    assert isinstance(data, CaseDispatched)
    body = {
        "case_id": data.case_id,
        "version": data.version,
        "department": data.department,
        "deadline": data.deadline.isoformat(),
        "rule": data.rule,
        **_case_facts(case),
    }
    if data.assisting or role != "lead":
        body |= {"role": role, "assisting": data.assisting}
    if data.assumed_years:  # reckoned on weekends alone in these years: an estimate
        body["assumed_years"] = data.assumed_years
    return _message(env, body)


def notices(env: Envelope, case: CaseRecord) -> list[Notice]:
    """Whom `env` concerns, and what each is told: a dispatched case goes to its lead and
    assisting departments; decisions on a case to its department; a breach to the department
    that owns the deadline; an escalation to the department named to be notified."""
    data = env.data
    if isinstance(data, CaseDispatched):
        lead = Notice(data.department, dispatched_message(env, case))
        return [lead] + [
            Notice(code, dispatched_message(env, case, "assisting")) for code in data.assisting
        ]
    body: dict[str, Any] = {"case_id": data.case_id}
    department: str | None = case.department
    if isinstance(data, CaseExtended | CaseParked | CaseResumed):
        body |= {"version": data.version, "reason": data.reason}
        if isinstance(data, CaseExtended | CaseResumed) and data.deadline is not None:
            body["deadline"] = data.deadline.isoformat()  # resumed: moved by the parking
        if isinstance(data, CaseResumed) and data.assumed_years:
            body["assumed_years"] = data.assumed_years  # an estimate, as on a dispatch
        if isinstance(data, CaseExtended | CaseParked):
            body["request_id"] = data.request_id
    elif isinstance(data, ExtensionDenied | ParkingDenied):
        assert isinstance(data, DepartmentRequest)
        department = data.department
        body |= {"request_id": data.request_id, "reason": data.reason}
    elif isinstance(data, SlaBreach | SlaEscalation):
        department = data.department
        body |= {
            "case_version": data.case_version,
            "stage": data.stage.value,
            "department": data.department,
            "deadline": data.deadline.isoformat(),
        }
        if isinstance(data, SlaEscalation):
            body["tier"] = data.tier
            department = data.notify_department  # the tier's office
            if not department:
                return []
    else:
        return []
    if not department:
        return []
    return [Notice(department, _message(env, body | _case_facts(case)))]


NOTIFIED = (
    CaseDispatched,
    CaseExtended,
    CaseParked,
    CaseResumed,
    ExtensionDenied,
    ParkingDenied,
    SlaBreach,
    SlaEscalation,
)


def concerns_departments(env: Envelope) -> bool:
    """Whether `env` is of a type some department is told about."""
    return isinstance(env.data, NOTIFIED)


def webhook_id(event_id: str, department: str) -> str:
    """Stable per event and department: the same across retries, replays and restarts."""
    return f"msg_{uuid.uuid5(_WEBHOOK_NAMESPACE, f'{event_id}/{department}').hex}"


def encode_body(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def signed_headers(
    secrets: str | Sequence[str], webhook_id: str, at: datetime, body: str
) -> dict[str, str]:
    """Headers for one attempt: one `v1,` signature per secret (several during rotation)."""
    at = at.astimezone(UTC)  # the library signs the UTC wall-clock time
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise ValueError("no secret to sign with")
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(Webhook(k).sign(webhook_id, at, body) for k in keys),
        "content-type": "application/json",
    }


# --- the retry schedule ----------------------------------------------------------------


@dataclass(frozen=True)
class RetrySchedule:
    """`delays[n]` is the wait before attempt n+1 (the first is normally 0: immediately);
    after `len(delays)` failed attempts the delivery is dead-lettered. Each wait is spread
    by ±`jitter` (a fraction), so a department coming back is not hit by every retry at once.
    """

    delays: tuple[float, ...]
    jitter: float = 0.2

    @classmethod
    def parse(cls, text: str, jitter: float = 0.2) -> RetrySchedule:
        try:
            delays = tuple(float(part) for part in text.split(",") if part.strip())
        except ValueError as exc:
            raise ValueError(f"a retry schedule is comma-separated seconds: {text!r}") from exc
        if not delays or any(d < 0 for d in delays):
            raise ValueError(f"a retry schedule needs at least one delay, none negative: {text!r}")
        if not 0 <= jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")
        return cls(delays, jitter)

    @property
    def attempts(self) -> int:
        return len(self.delays)

    def next_delay(
        self,
        failed_attempts: int,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds until the next attempt after `failed_attempts` failures, or None when the
        delivery is exhausted. A receiver's `Retry-After` is a floor, never shortened."""
        if failed_attempts >= self.attempts:
            return None
        base = self.delays[failed_attempts]
        spread = (rng or random).uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        delay = base * (1 + spread)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay


Verdict = Literal["delivered", "retry", "gone"]


def verdict(status: int | None) -> Verdict:
    """Only 2xx is success; 410 Gone disables the endpoint; everything else (other 4xx and
    5xx, 3xx redirects, no answer at all) is retried."""
    if status is not None and 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    return "retry"


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# --- one attempt: what came of it, what follows, and the circuit breaker ------------------

Result = Literal["delivered", "failed", "exhausted", "gone", "refused"]


@dataclass(frozen=True)
class Answer:
    """What one attempt got: the endpoint's status (and its `Retry-After`, in seconds), or
    an error where no answer came, or why the address was not called at all (`refused`)."""

    status: int | None = None
    retry_after: float | None = None
    error: str | None = None
    refused: str | None = None

    @property
    def problem(self) -> str | None:
        """What went wrong, for the attempt log; None when the endpoint answered."""
        return f"refused: {self.refused}" if self.refused is not None else self.error


@dataclass(frozen=True)
class Next:
    """What follows an attempt: its result, and for a failed one the wait until the next."""

    result: Result
    retry_in: float | None = None


def next_step(
    answer: Answer, attempts: int, schedule: RetrySchedule, rng: random.Random | None = None
) -> Next:
    """After attempt number `attempts`: delivered; dead for good when the endpoint is gone
    or its address refused (no retry could change that); else tried again on `schedule`
    (a `Retry-After` as a floor) until it runs out: exhausted."""
    if answer.refused is not None:
        return Next("refused")
    judged = verdict(answer.status)
    if judged != "retry":
        return Next(judged)
    delay = schedule.next_delay(attempts, answer.retry_after, rng)
    return Next("exhausted") if delay is None else Next("failed", delay)


@dataclass(frozen=True)
class Breaker:
    """The circuit breaker (熔断) of one department's endpoint. After `threshold` failed
    attempts in a row it opens: nothing is sent for `cooldown` seconds, then one attempt at
    a time (half-open); a delivery closes it, each further failure opens it again. A 410 or
    a refused address says nothing of the endpoint's health and leaves it as it is."""

    threshold: int
    cooldown: float
    failures: int = 0  # failed attempts since the last delivery
    open_until: float = 0.0  # on a monotonic clock; open before it

    @property
    def tripped(self) -> bool:
        """Open, or half-open once the cooldown is over."""
        return self.failures >= self.threshold

    def admits(self, now: float) -> bool:
        return not self.tripped or now >= self.open_until

    def limit(self, concurrency: int) -> int:
        """Attempts allowed in flight at once."""
        return 1 if self.tripped else concurrency

    def after(self, result: Result, now: float) -> Breaker:
        if result == "delivered":
            return replace(self, failures=0)
        if result in ("gone", "refused"):
            return self
        failures = self.failures + 1
        if failures < self.threshold:
            return replace(self, failures=failures)
        return replace(self, failures=failures, open_until=now + self.cooldown)


# --- server-side request forgery -------------------------------------------------------


def url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL's form, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port out of range
        (parts.hostname or "").encode("idna")  # a host no resolver could take
    except (ValueError, UnicodeError) as exc:
        return f"the URL does not parse ({exc})"
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username or parts.password:
        return "credentials in the URL are not allowed"
    return None


def address_problem(addresses: Sequence[str], allow_private: bool) -> str | None:
    """Why the resolved `addresses` of a webhook host may not be called, or None. Private,
    loopback, link-local (cloud metadata), multicast and reserved addresses are refused
    unless the city pack allows private addresses."""
    if not addresses:
        return "the host does not resolve"
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if ip.is_multicast or ip.is_unspecified or (ip.is_reserved and not ip.is_loopback):
            return f"{ip} is not a unicast address"
        if ip.is_loopback or ip.is_private or ip.is_link_local:
            if allow_private:
                continue
            return f"{ip} is a private, loopback or link-local address"
        if not ip.is_global and not allow_private:
            return f"{ip} is a private (non-global) address"
    return None
