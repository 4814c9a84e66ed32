"""Delivery of webhooks, logged in MongoDB `deliveries` so a delivered message is not sent
again after a restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
from prometheus_client import Counter
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.citypack import CityPack
from gridloop.kafka import Retry
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import CaseDispatched
from services.notify.core import backoff, dispatched_message, encode_body, signed_headers
from services.projections.store import CaseStore

log = logging.getLogger(__name__)
WEBHOOKS = Counter(
    "gridloop_webhook_deliveries_total", "Webhook delivery attempts", ["department", "outcome"]
)


class Notify:
    def __init__(
        self,
        pack: CityPack,
        db: AsyncDatabase[Document],
        http: httpx.AsyncClient,
        attempts: int,
        backoff_seconds: float,
    ) -> None:
        self.pack, self.http = pack, http
        self.cases = CaseStore(db)
        self.deliveries = db["deliveries"]
        self.attempts, self.backoff_seconds = attempts, backoff_seconds

    async def on_event(self, env: Envelope) -> Sequence[Envelope]:
        if not isinstance(env.data, CaseDispatched):
            return []
        department = self.pack.departments.get(env.data.department)
        if department is None or department.webhook is None:
            log.warning(
                "department %s has no webhook; case %s not notified",
                env.data.department,
                env.data.case_id,
            )
            return []
        if await self.deliveries.find_one({"_id": env.id, "status": "delivered"}):
            return []  # delivered before a restart: never twice
        case = await self.cases.get(env.data.case_id)
        if case is None:
            raise Retry(f"case {env.data.case_id} not projected yet")
        body = encode_body(dispatched_message(env, case))
        status = await self._deliver(
            env.id, department.code, str(department.webhook.url), department.webhook.secret, body
        )
        await self.deliveries.update_one(
            {"_id": env.id},
            {
                "$set": {
                    "department": department.code,
                    "status": status,
                    "case_id": env.data.case_id,
                    "at": datetime.now(UTC),
                }
            },
            upsert=True,
        )
        return []

    async def _deliver(
        self, webhook_id: str, department: str, url: str, secret: str, body: str
    ) -> str:
        for attempt in range(1, self.attempts + 1):
            headers = signed_headers(secret, webhook_id, datetime.now(UTC), body)
            try:
                response = await self.http.post(url, content=body.encode(), headers=headers)
                if 200 <= response.status_code < 300:
                    WEBHOOKS.labels(department, "delivered").inc()
                    return "delivered"
                log.warning("webhook %s to %s: HTTP %d", webhook_id, url, response.status_code)
            except httpx.HTTPError as exc:
                log.warning("webhook %s to %s: %r", webhook_id, url, exc)
            WEBHOOKS.labels(department, "failed").inc()
            if attempt < self.attempts:
                await asyncio.sleep(backoff(attempt, self.backoff_seconds))
        WEBHOOKS.labels(department, "exhausted").inc()
        return "exhausted"
