"""Bootstrap of the intake service."""

from __future__ import annotations

from gridloop.citypack import load_city_pack
from gridloop.config import Settings
from gridloop.idempotency import IdempotencyStore
from gridloop.runtime import infrastructure, serve
from services.intake.api import Intake, create_app
from services.projections.store import CaseStore


async def run(settings: Settings) -> None:
    pack = load_city_pack(settings.city_pack)
    async with infrastructure(settings, "intake") as infra:
        idempotency = IdempotencyStore(infra.db)
        await idempotency.create_indexes()
        intake = Intake(pack, infra.producer, CaseStore(infra.db), idempotency)
        await serve(create_app(intake), settings.host, settings.intake_port, [])
