"""Bootstrap of the dispatch service."""

from __future__ import annotations

from collections.abc import Sequence

from gridloop.auth import CredentialStore
from gridloop.citypack import load_city_pack
from gridloop.commands.relay import Relay
from gridloop.commands.setup import create_indexes
from gridloop.config import Settings
from gridloop.http import HttpLimits
from gridloop.kafka import BatchPipeline, EventProducer
from gridloop.runtime import infrastructure, serve
from gridloop.topology import DISPATCH
from services.dispatch.api import create_app
from services.dispatch.handlers import Dispatch

GROUP, TOPICS = DISPATCH.consumer_group, DISPATCH.topics  # filings, and reworks


def consumer(
    dispatch: Dispatch,
    producer: EventProducer,
    bootstrap_servers: str,
    session_timeout_ms: int,
    group: str = GROUP,
    topics: Sequence[str] = TOPICS,
) -> BatchPipeline:
    """A poll at once (`on_poll`: one read of its cases' heads, its dispatches claimed and
    published together); record by record (`on_event`) only to find the record at fault
    when a poll fails."""
    return BatchPipeline(
        group,
        topics,
        dispatch.on_event,
        dispatch.on_poll,
        producer,
        bootstrap_servers,
        session_timeout_ms,
    )


async def run(settings: Settings) -> None:
    pack = load_city_pack(settings.city_pack)
    async with infrastructure(settings, GROUP) as infra:
        await create_indexes(infra.db)
        dispatch = Dispatch.on(pack, infra.db, infra.producer)
        pipeline = consumer(
            dispatch,
            infra.producer,
            settings.kafka_bootstrap_servers,
            settings.kafka_session_timeout_ms,
        )
        app = create_app(dispatch, CredentialStore(infra.db), HttpLimits.from_settings(settings))
        await serve(
            app, settings.host, settings.dispatch_port, [pipeline.run, Relay(dispatch.path).run]
        )
