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
        service = GridService(pack, store, infra.producer)
        app = create_app(service, CredentialStore(infra.db), HttpLimits.from_settings(settings))
        intake = settings.intake_url or f"http://127.0.0.1:{settings.intake_port}"
        app.state.visits = await Visits.build(service, infra.db, IntakeClient(intake))
        await serve(app, settings.host, settings.grid_port, [])
