"""The projections service: every lifecycle topic → the `cases` collection."""

from __future__ import annotations

from collections.abc import Sequence

from gridloop.config import Settings
from gridloop.runtime import infrastructure, ops_app, serve
from schemas.envelope import Envelope
from schemas.topics import LIFECYCLE_TOPICS
from services.projections.store import CaseStore

GROUP = "projections"


async def run(settings: Settings) -> None:
    async with infrastructure(settings, GROUP) as infra:
        store = CaseStore(infra.db)
        await store.create_indexes()

        async def project(env: Envelope) -> Sequence[Envelope]:
            await store.apply(env)
            return ()

        pipeline = infra.pipeline(GROUP, [t.name for t in LIFECYCLE_TOPICS], project)
        app = ops_app("gridloop projections")
        await serve(app, settings.host, settings.projections_port, [pipeline.run])
