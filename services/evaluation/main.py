"""The evaluation service: every lifecycle topic → each case's facts → the scores the event
touched (day, week and month of each entity the case counts for), the Prometheus gauges,
and the scores API (`api.py`) with the big screen (`screen.py`).

The consumer only records facts and marks the case dirty, a whole poll at once
(`ScoreStore.apply_many`); a recomputer turns the marks into scores from the stored facts,
so a burst of events on one street costs one recomputation and a rebuild from the topics
gives the very same scores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from prometheus_client import Gauge

from gridloop.auth import CredentialStore
from gridloop.citypack import load_city_pack
from gridloop.config import Settings
from gridloop.http import HttpLimits
from gridloop.kafka import BatchPipeline, ensure_topics
from gridloop.kafka.replay import replay
from gridloop.mongo import connect, database
from gridloop.runtime import infrastructure, serve
from gridloop.scoring import Indicator, Level, PeriodKind, Score
from gridloop.topology import EVALUATION
from schemas import clock
from schemas.envelope import Envelope
from services.evaluation.api import create_app
from services.evaluation.store import Key, ScoreStore

GROUP, TOPICS = EVALUATION.consumer_group, EVALUATION.topics
RECOMPUTE_SECONDS = 0.5
log = logging.getLogger(__name__)

# Bounded labels: departments and streets (tens, fixed by the city pack), this month only;
# never grids, supervisors or cases.
GAUGED = (Level.department, Level.street)
SCORE = Gauge(
    "gridloop_evaluation_score",
    "Composite 100-point score of this month so far",
    ["level", "entity"],
)
RATIO = Gauge(
    "gridloop_evaluation_indicator_ratio",
    "An indicator of this month so far (numerator / denominator)",
    ["level", "entity", "indicator"],
)
PENDING = Gauge(
    "gridloop_evaluation_pending_cases",
    "Cases whose scores wait to be recomputed (grows when the recomputer falls behind)",
)


def gauge(key: Key, found: Score | None, month: str) -> None:
    """Show a department's or street's score of `month` (the current one) on the gauges."""
    if key.level not in GAUGED or key.kind is not PeriodKind.month or key.period != month:
        return
    labels = (key.level.value, key.entity)
    ratios = found.indicators if found is not None else {}
    if found is None or found.score is None:
        with contextlib.suppress(KeyError):
            SCORE.remove(*labels)
    else:
        SCORE.labels(*labels).set(found.score)
    for indicator in Indicator:
        value = ratios[indicator].value if indicator in ratios else None
        if value is not None:
            RATIO.labels(*labels, indicator.value).set(value)
        else:
            with contextlib.suppress(KeyError):
                RATIO.remove(*labels, indicator.value)


async def recompute(store: ScoreStore, stop: asyncio.Event) -> None:
    """Turn dirty marks into scores until stopped."""
    while not stop.is_set():
        month = clock.now().astimezone(store.zone).strftime("%Y-%m")
        done = await store.recompute_dirty()
        for key, found in done:
            gauge(key, found, month)
        PENDING.set(await store.pending())
        if not done:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RECOMPUTE_SECONDS)


async def show_month(store: ScoreStore) -> None:
    """After a restart, the gauges show this month's stored scores at once."""
    month = clock.now().astimezone(store.zone).strftime("%Y-%m")
    for level in GAUGED:
        for found in await store.league(level, month):
            gauge(Key(level, found.entity, PeriodKind.month, month), found, month)


async def run(settings: Settings) -> None:
    pack = load_city_pack(settings.city_pack)
    async with infrastructure(settings, GROUP) as infra:
        store = ScoreStore(infra.db, pack)
        await store.create_indexes()
        await store.totals.adopt()  # cases stored before running totals, counted once
        await show_month(store)

        async def evaluate(env: Envelope) -> Sequence[Envelope]:
            await store.add(env)
            return ()

        # A poll at once (`apply_many`); one envelope at a time (`evaluate`) only to find
        # the record at fault when a poll fails.
        pipeline = BatchPipeline(
            GROUP,
            TOPICS,
            evaluate,
            store.apply_many,
            infra.producer,
            settings.kafka_bootstrap_servers,
            settings.kafka_session_timeout_ms,
        )
        app = create_app(store, CredentialStore(infra.db), HttpLimits.from_settings(settings))

        async def recomputer(stop: asyncio.Event) -> None:
            await recompute(store, stop)

        await serve(app, settings.host, settings.evaluation_port, [pipeline.run, recomputer])


async def rebuild(settings: Settings) -> tuple[int, int]:
    """Drop the evaluation collections and replay every lifecycle topic into them, from the
    first record to the end each partition had when the rebuild began; recompute every
    score; return (applied, skipped). Run it with the evaluation service stopped (it
    resumes from its own offsets afterwards). Undecodable records are skipped."""
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        replication=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
        namespace=settings.namespace,
    )
    pack = load_city_pack(settings.city_pack)
    client = connect(settings)
    try:
        store = ScoreStore(database(client, settings), pack)
        await store.drop()
        await store.create_indexes()
        kafka, namespace = settings.kafka_bootstrap_servers, settings.namespace
        applied, skipped = await replay(kafka, store.apply_many, namespace)
        while await store.pending():
            await store.recompute_dirty()
    finally:
        await client.close()
    return applied, skipped
