"""Bootstrap of the dispatch service."""

from __future__ import annotations

from gridloop.auth import CredentialStore
from gridloop.citypack import load_city_pack
from gridloop.config import Settings
from gridloop.http import HttpLimits
from gridloop.idempotency import IdempotencyStore
from gridloop.runtime import infrastructure, serve
from schemas.topics import CLOSURES, REPORTS
from services.dispatch.service import Dispatch, create_app
from services.projections.store import CaseStore

GROUP = "dispatch"


async def run(settings: Settings) -> None:
    pack = load_city_pack(settings.city_pack)
    async with infrastructure(settings, GROUP) as infra:
        idempotency = IdempotencyStore(infra.db)
        await idempotency.create_indexes()
        dispatch = Dispatch(pack, infra.producer, CaseStore(infra.db), idempotency)
        pipeline = infra.pipeline(GROUP, [REPORTS.name, CLOSURES.name], dispatch.on_event)
        app = create_app(dispatch, CredentialStore(infra.db), HttpLimits.from_settings(settings))
        await serve(app, settings.host, settings.dispatch_port, [pipeline.run])
