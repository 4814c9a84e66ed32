"""The demo's stand-in message gateway (`system/gateway.py`): it takes a signed message once,
refuses a bad signature or a channel the pack lacks, and records the number masked — in
memory and in its log, which a restarted gateway reads back (so a repeat stays dropped)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi import FastAPI

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from services.notify.core import signed_headers
from system.gateway import LOG_FILE, Gateway

PACK = load_city_pack(DEMO_CITY_PACK)
PHONE = "13712345678"


def _client(gateway: Gateway) -> httpx.AsyncClient:
    app = FastAPI()
    gateway.add_routes(app)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


def _message(webhook_id: str, kind: str = "sms") -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "type": "case.filed",
            "timestamp": "2026-03-02T09:30:00+00:00",
            "data": {"case_id": "c-1", "case_number": "S1", "text": "已立案"},
            "channel": kind,
            "to": PHONE,
        },
        ensure_ascii=False,
    )
    channel = PACK.messages.channel(kind) if PACK.messages else None
    secret = getattr(channel, "secret", "whsec_" + "A" * 32)
    return body.encode(), signed_headers(secret, webhook_id, datetime.now(UTC), body)


async def test_a_message_is_recorded_once_with_the_number_masked(tmp_path: Path) -> None:
    gateway = Gateway(PACK, tmp_path)
    body, headers = _message("msg_1")
    async with _client(gateway) as client:
        for _ in range(2):  # the second: a retry after a lost answer
            answer = await client.post("/gateway/sms", content=body, headers=headers)
            assert answer.status_code == 204, answer.text
        [record] = (await client.get("/gateway/messages")).json()
    assert (record["to"], record["type"], record["text"]) == ("137****5678", "case.filed", "已立案")
    log = (tmp_path / LOG_FILE).read_text("utf-8")
    assert len(log.splitlines()) == 1 and PHONE not in log
    # Restarted, it still knows the message: a late repeat is dropped.
    again = Gateway(PACK, tmp_path)
    assert not again.receive("sms", body, headers)
    assert len(again.messages) == 1


async def test_a_bad_signature_or_an_unknown_channel_is_refused(tmp_path: Path) -> None:
    body, headers = _message("msg_2")
    async with _client(Gateway(PACK, tmp_path)) as client:
        forged = await client.post("/gateway/sms", content=body + b" ", headers=headers)
        assert forged.status_code == 401
        # the WeChat channel has its own secret: the SMS one's signature does not pass
        wechat = await client.post("/gateway/wechat", content=body, headers=headers)
        assert wechat.status_code == 401
        email = await client.post("/gateway/email", content=body, headers=headers)
        assert email.status_code == 404
        assert (await client.get("/gateway/messages")).json() == []
    assert not (tmp_path / LOG_FILE).exists()
