"""Bootstrap of the notify service: the outbox consumer, the delivery workers, the admin API."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from gridloop.auth import CredentialStore
from gridloop.cases.reader import CaseReader
from gridloop.citypack import load_city_pack
from gridloop.config import Settings
from gridloop.contacts.configured import contact_keys
from gridloop.contacts.store import ContactStore
from gridloop.follow import follow_key, follow_token
from gridloop.http import HttpLimits
from gridloop.kafka import BatchPipeline
from gridloop.mediakeys import link_key
from gridloop.medialinks import LinkSigner
from gridloop.runtime import infrastructure, serve
from gridloop.topology import NOTIFY
from services.notify.admin import create_app
from services.notify.core import RetrySchedule
from services.notify.service import Deliverer, DeliveryPolicy, Notify, zero
from services.notify.store import DeliveryStore

GROUP, TOPICS = NOTIFY.consumer_group, NOTIFY.topics


def policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        schedule=RetrySchedule.parse(settings.webhook_retry_schedule, settings.webhook_jitter),
        timeout=settings.webhook_timeout_seconds,
        concurrency=settings.webhook_concurrency,
        circuit_threshold=settings.webhook_circuit_threshold,
        circuit_cooldown=settings.webhook_circuit_cooldown_seconds,
        poll=settings.webhook_poll_seconds,
    )


async def run(settings: Settings) -> None:
    pack = load_city_pack(settings.city_pack)
    zero(pack.departments)
    rules = policy(settings)
    # No redirects: a redirect could lead a webhook to an address the checks refused.
    timeout = httpx.Timeout(settings.webhook_timeout_seconds)
    async with (
        infrastructure(settings, GROUP) as infra,
        httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http,
    ):
        store = DeliveryStore(infra.db)
        await store.create_indexes()
        wake = asyncio.Event()
        links = LinkSigner(
            await link_key(infra.db, settings.media_link_key),
            settings.media_base,
            timedelta(seconds=settings.media_link_ttl_seconds),
        )
        contacts = ContactStore(infra.db, contact_keys(settings))
        key, base = await follow_key(infra.db), settings.public_base

        def following(case_id: str) -> str:
            """The reporter's link to follow and rate their case, at the front door."""
            return f"{base}/v1/cases/{case_id}/public?token={follow_token(key, case_id)}"

        cases = CaseReader(infra.db)
        notify = Notify(pack, cases, store, wake, links, contacts, following)
        deliverer = Deliverer(pack, store, http, rules, wake, contacts=contacts)
        pipeline = BatchPipeline(
            GROUP,
            TOPICS,
            notify.on_event,  # the fallback, record by record, for a poll that fails as a whole
            notify.on_events,
            infra.producer,
            settings.kafka_bootstrap_servers,
            settings.kafka_session_timeout_ms,
        )
        app = create_app(pack, store, CredentialStore(infra.db), HttpLimits.from_settings(settings))
        await serve(app, settings.host, settings.notify_port, [pipeline.run, deliverer.run])
