"""The simulator's built-in webhook receivers: a department's message is handed over once,
and only when its signature is the department's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from system.simulate.receivers import Receivers

PACK = load_city_pack(DEMO_CITY_PACK)
MESSAGE = {"type": "case.dispatched", "timestamp": "2026-12-07T08:00:00+08:00", "data": {}}


def signed(department: str, webhook_id: str, secret: str | None = None) -> dict[str, str]:
    hook = PACK.departments[department].webhook
    assert hook is not None
    now = datetime.now(UTC)
    signature = Webhook(secret or hook.secret).sign(webhook_id, now, json.dumps(MESSAGE))
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


async def test_a_signed_message_is_handed_over_once() -> None:
    got: list[tuple[str, dict[str, Any]]] = []
    receivers = Receivers(PACK, lambda department, message: got.append((department, message)))
    transport = httpx.ASGITransport(app=receivers.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        body = json.dumps(MESSAGE)
        first = await http.post("/hooks/WATER", content=body, headers=signed("WATER", "msg_1"))
        again = await http.post("/hooks/WATER", content=body, headers=signed("WATER", "msg_1"))
        forged = await http.post(
            "/hooks/WATER",
            content=body,
            headers=signed("WATER", "msg_2", "whsec_" + "A" * 32),
        )
        unknown = await http.post("/hooks/NOBODY", content=body, headers=signed("WATER", "m3"))
    assert (first.status_code, again.status_code) == (204, 204)
    assert (forged.status_code, unknown.status_code) == (401, 404)
    assert got == [("WATER", MESSAGE)]
    assert receivers.refused == 2
