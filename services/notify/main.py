"""Bootstrap of the notify service."""

from __future__ import annotations

import httpx

from gridloop.citypack import load_city_pack
from gridloop.config import Settings
from gridloop.runtime import infrastructure, ops_app, serve
from schemas.topics import DISPATCHES
from services.notify.service import Notify

GROUP = "notify"


async def run(settings: Settings) -> None:
    pack = load_city_pack(settings.city_pack)
    timeout = httpx.Timeout(settings.webhook_timeout_seconds)
    async with infrastructure(settings, GROUP) as infra, httpx.AsyncClient(timeout=timeout) as http:
        notify = Notify(
            pack, infra.db, http, settings.webhook_attempts, settings.webhook_backoff_seconds
        )
        pipeline = infra.pipeline(GROUP, [DISPATCHES.name], notify.on_event)
        await serve(ops_app("gridloop notify"), settings.host, settings.notify_port, [pipeline.run])
