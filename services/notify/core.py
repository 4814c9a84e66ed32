"""Webhook messages and their signatures. Pure.

Standard Webhooks: `webhook-id` is the event id, stable across retries, so a receiver can
drop a repeated delivery; `webhook-signature` is `v1,` + HMAC-SHA256 over
`id.timestamp.body` with the department's `whsec_` secret.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import CaseDispatched


def dispatched_message(env: Envelope, case: Document) -> dict[str, Any]:
    """The payload `{type, timestamp, data}` for a department: what, where, by when."""
    data = env.data
    assert isinstance(data, CaseDispatched)
    point = case.get("point", {}).get("coordinates")
    return {
        "type": "case.dispatched",
        "timestamp": env.time.isoformat(),
        "data": {
            "case_id": data.case_id,
            "version": data.version,
            "department": data.department,
            "deadline": data.deadline.isoformat(),
            "rule": data.rule,
            "kind": case.get("kind"),
            "class_code": case.get("class_code"),
            "grid_code": case.get("grid_code"),
            "point": {"lon": point[0], "lat": point[1]} if point else None,
            "description": case.get("description"),
        },
    }


def encode_body(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def signed_headers(secret: str, webhook_id: str, at: datetime, body: str) -> dict[str, str]:
    at = at.astimezone(UTC)  # the library signs the UTC wall-clock time
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body),
        "content-type": "application/json",
    }


def backoff(attempt: int, base_seconds: float) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, …): doubling from the base."""
    return float(base_seconds * 2 ** (attempt - 1))
