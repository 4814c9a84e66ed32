"""Webhook messages, signatures and the retry schedule. Pure. (Where a webhook may go:
`addresses.py`.)

Standard Webhooks: `webhook-id` is stable across retries (derived from the event id and the
department), so a receiver can drop a repeated delivery; `webhook-signature` is `v1,` +
HMAC-SHA256 over `id.timestamp.body` with the department's `whsec_` secret — one signature
per current secret, space-separated, while a secret is being rotated.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from standardwebhooks import Webhook

from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack, ComponentInstance
from gridloop.medialinks import LinkSigner
from schemas.envelope import Envelope
from schemas.events import (
    CaseDispatched,
    CaseExtended,
    CaseParked,
    CaseResumed,
    EventData,
    ExtensionDenied,
    ParkingDenied,
    SlaBreach,
    SlaEscalation,
    event_name,
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


class Telling:
    """What a message says beyond its event: the case's facts, named by the city pack
    (class and grid names, the nearest landmark of its inventory), with its photos as
    signed links (none without a signer) that expire from `now`."""

    def __init__(self, pack: CityPack, links: LinkSigner | None = None) -> None:
        self.pack, self.links = pack, links
        self._by_grid: dict[str, list[ComponentInstance]] | None = None

    def facts(self, case: CaseRecord, department: str, now: datetime) -> dict[str, Any]:
        """The case's facts as told to `department` (its photo links are signed for it)."""
        point = case.point.coordinates if case.point else None
        cls = self.pack.classes.get((case.kind, case.class_code or "")) if case.kind else None
        grid = self.pack.grid_by_code.get(case.grid_code or "")
        street = self.pack.streets.get(grid.street) if grid else None
        return {
            "case_id": case.case_id,
            "case_number": case.case_number,
            "kind": case.kind,
            "class_code": case.class_code,
            "class_name": cls.name if cls else None,
            "urgency": case.urgency,
            "description": case.description,
            "point": {"type": "Point", "coordinates": list(point)} if point else None,
            "address": case.address,
            "landmark": self._landmark(case),
            "grid_code": case.grid_code,
            "grid_name": (grid.name or None) if grid else None,
            "street": street.name if street else None,
            "media": self._media(case, department, now),
        }

    def _media(self, case: CaseRecord, department: str, now: datetime) -> list[dict[str, Any]]:
        if self.links is None:
            return []
        ids = list(case.media)
        for entry in case.timeline:  # the supervisor's photos of the confirmed problem
            ids += [m for m in entry.data.get("media") or () if isinstance(m, str)]
        links = [(m, self.links.link(m, department, now)) for m in dict.fromkeys(ids)]
        return [
            {"media_id": m, "url": link.url, "expires_at": link.expires_at.isoformat()}
            for m, link in links
        ]

    def _landmark(self, case: CaseRecord) -> dict[str, Any] | None:
        """The case's component, else the inventory's nearest in the case's grid."""
        if case.point is None:
            return None
        lon, lat = case.point.coordinates
        own = self.pack.component(case.component_id) if case.component_id else None
        near = [own] if own else self._grid_components(case.grid_code or "")
        if not near:
            return None
        best = min(near, key=lambda c: _metres(lon, lat, c.lon, c.lat))
        distance = round(_metres(lon, lat, best.lon, best.lat))
        return {"name": best.name, "component_id": best.id, "distance_m": distance}

    def _grid_components(self, grid: str) -> list[ComponentInstance]:
        if self._by_grid is None:  # once, on the first message that needs it
            self._by_grid = {}
            for c in self.pack.components.values():
                self._by_grid.setdefault(c.grid, []).append(c)
        return self._by_grid.get(grid, [])


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Distance on the ground, flat-earth: exact enough within a grid (≈ 100 m wide)."""
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(x, math.radians(lat2 - lat1)) * 6_371_000


def _message(env: Envelope, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": event_name(env.type), "timestamp": env.time.isoformat(), "data": data}


def dispatched_message(env: Envelope, facts: dict[str, Any], role: str = "lead") -> dict[str, Any]:
    """The payload `{type, timestamp, data}` for a department: what, where, by when, and
    whether it leads or assists."""
    data = env.data
    assert isinstance(data, CaseDispatched)
    body = facts | {
        "version": data.version,
        "department": data.department,
        "role": role,
        "assisting": data.assisting,
        "deadline": data.deadline.isoformat(),
        # reckoned into a year nobody supplied a calendar for: an estimate
        "assumed_years": data.assumed_years,
        "basis": data.basis,
        "rule": data.rule,
    }
    return _message(env, body)


def notices(env: Envelope, case: CaseRecord, telling: Telling, now: datetime) -> list[Notice]:
    """Whom `env` concerns, and what each is told: a dispatched case goes to its lead and
    assisting departments; decisions on a case to its department; a breach to the department
    that owns the deadline; an escalation to the department named to be notified."""
    data = env.data
    if not isinstance(data, NOTIFIED):
        return []
    if isinstance(data, CaseDispatched):
        lead = data.department
        told = [(lead, "lead")] + [(code, "assisting") for code in data.assisting]
        return [
            Notice(code, dispatched_message(env, telling.facts(case, code, now), role))
            for code, role in told
        ]
    department, body = _told(data, case.department)
    if not department:
        return []
    return [Notice(department, _message(env, telling.facts(case, department, now) | body))]


def _told(data: EventData, department: str | None) -> tuple[str | None, dict[str, Any]]:
    """Who is told of a decision or an SLA fact, and what beyond the case's facts."""
    if isinstance(data, SlaEscalation):  # to the office of the tier
        return data.notify_department, _clock(data) | {"tier": data.tier}
    if isinstance(data, SlaBreach) and data.stage.value == "mediate":
        return None, {}  # a dispute's tier office is no department: its view shows it
    if isinstance(data, SlaBreach):  # to the department that owns the deadline
        return data.department, _clock(data) | {"tier": None}
    body: dict[str, Any] = {"version": None, "reason": None, "request_id": None}
    body |= {"deadline": None, "assumed_years": []}
    if isinstance(data, CaseExtended | CaseParked | CaseResumed):
        body |= {"version": data.version, "reason": data.reason}
        if isinstance(data, CaseExtended | CaseResumed) and data.deadline is not None:
            body["deadline"] = data.deadline.isoformat()  # resumed: moved by the parking
        if isinstance(data, CaseResumed):
            body["assumed_years"] = data.assumed_years  # an estimate, as on a dispatch
        if isinstance(data, CaseExtended | CaseParked):
            body["request_id"] = data.request_id
        return department, body
    assert isinstance(data, ExtensionDenied | ParkingDenied)
    return data.department, body | {"request_id": data.request_id, "reason": data.reason}


def _clock(data: SlaBreach | SlaEscalation) -> dict[str, Any]:
    return {
        "case_version": data.case_version,
        "stage": data.stage.value,
        "department": data.department,
        "deadline": data.deadline.isoformat(),
    }


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
