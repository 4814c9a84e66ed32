"""The grid service: the staff register seeded from the pack, patrols, and their API. It
reads no topic; it writes the `grid` topic (staff spells and patrols, keyed by grid)."""

from __future__ import annotations

from gridloop.auth import CredentialStore
from gridloop.citypack import load_city_pack
from gridloop.config import Settings
from gridloop.http import HttpLimits
from gridloop.runtime import infrastructure, serve
from gridloop.topology import GRID_SERVICE
from services.grid.api import create_app
from services.grid.intake_client import IntakeClient
from services.grid.patrolling import Patrols
from services.grid.patrols import PatrolStore
from services.grid.service import GridService
from services.grid.store import GridStore
from services.grid.visits import Visits

NAME = GRID_SERVICE.service


async def run(settings: Settings) -> None:
    pack = load_city_pack(settings.city_pack)
    async with infrastructure(settings, NAME) as infra:
        store = GridStore(infra.db)
        await store.create_indexes()
        await store.seed(pack)
        patrols = PatrolStore(infra.db)
        await patrols.create_indexes()
        service = GridService(pack, store, infra.producer)
        parts: dict[str, object] = {"patrols": Patrols(service, patrols)}
        # Households and visits; a finding is reported to intake over its API.
        intake = IntakeClient(settings.intake_url or f"http://127.0.0.1:{settings.intake_port}")
        parts["visits"] = await Visits.build(service, infra.db, intake, background=True)
        limits = HttpLimits.from_settings(settings)
        app = create_app(service, CredentialStore(infra.db), limits, parts=parts)
        await serve(app, settings.host, settings.grid_port, [])
