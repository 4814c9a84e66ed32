"""Bootstrap of the intake service."""

from __future__ import annotations

from gridloop.citypack import load_city_pack
from gridloop.commands.relay import Relay
from gridloop.config import Settings
from gridloop.contacts.configured import contact_keys
from gridloop.http import HttpLimits
from gridloop.runtime import infrastructure, serve
from services.intake.api import create_app
from services.intake.handlers import Intake


async def run(settings: Settings) -> None:
    pack = load_city_pack(settings.city_pack)
    async with infrastructure(settings, "intake") as infra:
        keys = contact_keys(settings)
        intake = await Intake.build(pack, infra.producer, infra.db, keys, settings.media_link_key)
        await serve(
            create_app(intake, HttpLimits.from_settings(settings)),
            settings.host,
            settings.intake_port,
            [Relay(intake.path).run, intake.retention().run],
        )
