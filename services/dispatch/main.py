"""Bootstrap of the dispatch service."""

from __future__ import annotations

from collections.abc import Sequence

from gridloop.auth import CredentialStore
from gridloop.citypack import load_city_pack
from gridloop.config import Settings
from gridloop.http import HttpLimits
from gridloop.idempotency import IdempotencyStore
from gridloop.kafka import BatchPipeline
from gridloop.runtime import infrastructure, serve
from gridloop.topology import DISPATCH
from services.dispatch.service import Dispatch, create_app
from services.projections.store import CaseStore

GROUP, TOPICS = DISPATCH.consumer_group, DISPATCH.topics  # filings, and reworks


def consumer(
    dispatch: Dispatch,
    bootstrap_servers: str,
    session_timeout_ms: int,
    group: str = GROUP,
    topics: Sequence[str] = TOPICS,
) -> BatchPipeline:
    """A poll at once (`on_poll`: one read of its cases, one publish of its dispatches);
    record by record (`on_event`) only to find the record at fault when a poll fails."""
    return BatchPipeline(
        group,
        topics,
        dispatch.on_event,
        dispatch.on_poll,
        dispatch.producer,
        bootstrap_servers,
        session_timeout_ms,
    )


async def run(settings: Settings) -> None:
    pack = load_city_pack(settings.city_pack)
    async with infrastructure(settings, GROUP) as infra:
        idempotency = IdempotencyStore(infra.db)
        await idempotency.create_indexes()
        dispatch = Dispatch(pack, infra.producer, CaseStore(infra.db), idempotency)
        pipeline = consumer(
            dispatch, settings.kafka_bootstrap_servers, settings.kafka_session_timeout_ms
        )
        app = create_app(dispatch, CredentialStore(infra.db), HttpLimits.from_settings(settings))
        await serve(app, settings.host, settings.dispatch_port, [pipeline.run])
