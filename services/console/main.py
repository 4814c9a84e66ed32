"""The console service: the workbench's pages (`app.py`), on the shared database, and their
live news from the lifecycle topics (`live.py`); the dispatch service decides every action
(`GRIDLOOP_DISPATCH_URL`)."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from gridloop.audit import AuditTrail
from gridloop.cases.reader import CaseReader
from gridloop.citypack import load_city_pack
from gridloop.config import Settings
from gridloop.kafka.tail import tail
from gridloop.mongo import connect, database
from gridloop.people import People
from gridloop.runtime import serve
from services.console.app import Console, create_app
from services.console.live import Live
from services.console.throttle import Throttle


async def run(settings: Settings) -> None:
    pack = load_city_pack(settings.city_pack)
    client = connect(settings)
    try:
        db = database(client, settings)
        people = People(db)
        await people.create_indexes()
        reader = CaseReader(db)
        live = Live(reader)
        console = Console(
            people,
            reader,
            AuditTrail(db),
            settings.dispatch_url or f"http://127.0.0.1:{settings.dispatch_port}",
            Throttle(),
            live,
            departments={code: d.name for code, d in pack.departments.items()},
            intake_url=settings.intake_url or f"http://127.0.0.1:{settings.intake_port}",
            zone=ZoneInfo(pack.city.timezone),
            secure_cookies=settings.secure_cookies,
            trusted_proxies=settings.trusted_proxies,
            pack=pack,
            grid_url=settings.grid_url or f"http://127.0.0.1:{settings.grid_port}",
        )

        async def follow(stop: asyncio.Event) -> None:
            await tail(settings.kafka_bootstrap_servers, live.on_events, stop, settings.namespace)

        await serve(create_app(console), settings.host, settings.console_port, [follow])
    finally:
        await client.close()
