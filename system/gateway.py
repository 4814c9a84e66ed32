"""The stand-in message gateway: what an SMS gateway or WeChat's template messages would be to
the demo, recording what it would send instead of sending it.

It takes the reporters' messages notify posts to the pack's `sms` and `wechat` channels
(`messages.yaml`), verifies each signature with the channel's secret (`standardwebhooks`, as
a department's receiver does), drops a repeated delivery by its `webhook-id` (a retry, a
redelivery after a crash), and records each message once: in memory (`GET /gateway/messages`)
and as a line of `messages.jsonl` in its directory — the address masked (138****5678), as an
operator may read it; the number itself stays in the contact store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from standardwebhooks import Webhook, WebhookVerificationError

from gridloop.citypack import CityPack
from gridloop.citypack.messages import ProviderChannel
from services.notify.reporters import masked

LOG_FILE = "messages.jsonl"


class Gateway:
    """The messages a stand-in gateway received, once each, in the order they came."""

    def __init__(self, pack: CityPack, directory: Path | None = None) -> None:
        self.pack = pack
        self.log = directory / LOG_FILE if directory is not None else None
        self.messages: list[dict[str, Any]] = []
        if self.log is not None and self.log.exists():  # a restart keeps what it had
            lines = self.log.read_text(encoding="utf-8").splitlines()
            self.messages = [json.loads(line) for line in lines if line.strip()]
        self.seen = {m["webhook_id"] for m in self.messages}

    def _secret(self, kind: str) -> str:
        channel = self.pack.messages.channel(kind) if self.pack.messages else None
        if not isinstance(channel, ProviderChannel):
            raise HTTPException(404, f"no {kind} channel in the city pack")
        return channel.secret

    def receive(self, kind: str, body: bytes, headers: dict[str, str]) -> bool:
        """Verify and record one delivery; False for a repeat (recorded before)."""
        try:
            Webhook(self._secret(kind)).verify(body, headers)
        except WebhookVerificationError as exc:
            raise HTTPException(401, f"bad signature: {exc}") from exc
        webhook_id = headers["webhook-id"]
        if webhook_id in self.seen:
            return False
        message = json.loads(body)
        data = message.get("data") or {}
        record = {
            "webhook_id": webhook_id,
            "channel": kind,
            "to": masked(str(message.get("to", ""))),
            "type": message.get("type"),
            "case_id": data.get("case_id"),
            "case_number": data.get("case_number"),
            "text": data.get("text"),
            "received_at": datetime.now(UTC).isoformat(),
        }
        self.seen.add(webhook_id)
        self.messages.append(record)
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with self.log.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return True

    def add_routes(self, app: FastAPI) -> None:
        @app.post("/gateway/{kind}", status_code=204)
        async def receive(kind: str, request: Request) -> Response:
            self.receive(kind, await request.body(), dict(request.headers))
            return Response(status_code=204)

        @app.get("/gateway/messages")
        async def listing() -> list[dict[str, Any]]:
            """What the gateway would have sent, oldest first (addresses masked)."""
            return self.messages
