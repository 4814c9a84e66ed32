"""The console service: the workbench's pages (`app.py`), on the shared database; the
dispatch service decides every action (`GRIDLOOP_DISPATCH_URL`)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from gridloop.audit import AuditTrail
from gridloop.cases.reader import CaseReader
from gridloop.citypack import load_city_pack
from gridloop.config import Settings
from gridloop.mongo import connect, database
from gridloop.people import People
from gridloop.runtime import serve
from services.console.app import Console, create_app
from services.console.throttle import Throttle


async def run(settings: Settings) -> None:
    client = connect(settings)
    try:
        db = database(client, settings)
        people = People(db)
        await people.create_indexes()
        console = Console(
            people,
            CaseReader(db),
            AuditTrail(db),
            settings.dispatch_url or f"http://127.0.0.1:{settings.dispatch_port}",
            Throttle(),
            ZoneInfo(load_city_pack(settings.city_pack).city.timezone),
            settings.secure_cookies,
        )
        await serve(create_app(console), settings.host, settings.console_port, [])
    finally:
        await client.close()
