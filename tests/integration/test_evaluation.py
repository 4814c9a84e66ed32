"""The evaluation service on the real broker and database: cases' events published to
their topics (out of order, one twice), the scores computed and read through the API with
the cases behind each figure; then the collections rebuilt from the topics into another
database give exactly the same scores (the replay test).

The cases are reported in March 2031, a month no other test writes, so the figures are
this test's alone although every test shares the topics."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient
from typer.testing import CliRunner

from gridloop.auth import CredentialStore, Role
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.embedded import free_port
from gridloop.kafka import EventProducer, Pipeline, ensure_topics
from gridloop.mongo import Document
from gridloop.scoring import ON_READ, Level, PeriodKind
from schemas.envelope import Envelope
from schemas.topics import LIFECYCLE_TOPICS
from services.evaluation.api import create_app
from services.evaluation.main import rebuild, recompute
from services.evaluation.store import ScoreStore
from system.cli import app as cli
from system.up import System
from tests.conftest import Servers, fresh_namespace
from tests.evaluation_story import OTHER_GRID, Story
from tests.helpers import eventually

MARCH = datetime(2031, 3, 4, 1, tzinfo=UTC)  # Tuesday 4 March 2031, 09:00 in Shanghai
JANUARY = datetime(2032, 1, 6, 1, tzinfo=UTC)  # another month nobody else uses
PERIODS = {PeriodKind.day: "2031-03-04", PeriodKind.week: "2031-W10", PeriodKind.month: "2031-03"}


def stories(tag: str) -> list[Story]:
    """Five cases: two perfect, one late and reopened, one returned, one voided; the first
    filed, dispatched and its extension denied by the centre's people (scored as staff)."""
    ids = [f"EV-{tag}-{n}" for n in range(5)]
    return [
        Story(ids[0], MARCH)
        .reported()
        .filed(operator="wang")
        .dispatched(dispatcher="zhao")
        .acknowledged()
        .requested(f"{tag}-r1")
        .denied(f"{tag}-r1", "sun")
        .done(rating=5),
        Story(ids[1], MARCH).reported().filed().dispatched().breach().done(rating=1).rework(),
        Story(ids[2], MARCH)
        .reported(channel="website")
        .filed()
        .dispatched("WATER")
        .returned("WATER")
        .dispatched()
        .done(rating=4),
        Story(ids[3], MARCH).reported(channel="hotline").voided(),
        Story(ids[4], MARCH).reported(grid=OTHER_GRID).filed(grid=OTHER_GRID).dispatched().done(),
    ]


@dataclass
class Service:
    store: ScoreStore
    api: httpx.AsyncClient
    headers: dict[str, str]
    database: str
    namespace: str


@pytest.fixture
async def service(servers: Servers) -> AsyncIterator[Service]:
    settings = servers.settings()
    await ensure_topics(servers.kafka, namespace=settings.namespace)
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = client[settings.mongodb_database]
    store = ScoreStore(db, load_city_pack(DEMO_CITY_PACK))
    await store.create_indexes()
    producer = EventProducer(servers.kafka, "evaluation-test", settings.namespace)
    await producer.start()

    async def evaluate(env: Envelope) -> Sequence[Envelope]:
        await store.add(env)
        return ()

    group = f"evaluation-{uuid.uuid4().hex[:8]}"
    topics = [t.name for t in LIFECYCLE_TOPICS]
    pipeline = Pipeline(group, topics, evaluate, producer, servers.kafka, 6000)
    credentials = CredentialStore(db)
    token = await credentials.issue(Role.command_centre, "centre-1")
    stop = asyncio.Event()
    workers = [asyncio.create_task(pipeline.run(stop)), asyncio.create_task(recompute(store, stop))]
    transport = httpx.ASGITransport(app=create_app(store, credentials))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
            auth = {"Authorization": f"Bearer {token}"}
            yield Service(store, api, auth, settings.mongodb_database, settings.namespace)
    finally:
        stop.set()
        await asyncio.gather(*workers)
        await producer.stop()
        await client.drop_database(settings.mongodb_database)
        await client.close()


async def publish(servers: Servers, events: list[Envelope], namespace: str) -> None:
    producer = EventProducer(servers.kafka, "evaluation-test-publisher", namespace)
    await producer.start()
    try:
        for env in events:
            await producer.publish([env])
    finally:
        await producer.stop()


async def test_scores_drill_down_and_replay(servers: Servers, service: Service) -> None:
    cases = stories(uuid.uuid4().hex[:6])
    events = [e for s in cases for e in s.events]
    random.Random(6).shuffle(events)
    # Out of order, and one delivered twice.
    await publish(servers, [*events, events[0]], service.namespace)
    api, auth = service.api, service.headers

    async def settled() -> list[dict[str, object]] | None:
        # Every event of every case folded, and every score it touched recomputed.
        for story in cases:
            doc = await service.store.case_facts.find_one({"_id": story.case_id})
            if doc is None or doc.get("folded") != len(story.events):
                return None
        if await service.store.pending():
            return None
        params = {"level": "street", "period": "2031-03"}
        rows: list[dict[str, object]] = (
            await api.get("/scores", params=params, headers=auth)
        ).json()
        return rows

    league = await eventually(settled, what="every case folded and scored")
    street = next(r for r in league if r["entity"] == "001")
    assert street["name"] == "东华门街道 Donghuamen" and street["cases"] == 4
    figures = street["indicators"]
    assert isinstance(figures, dict)
    assert figures["filing_rate"] == {"numerator": 3, "denominator": 4}
    assert figures["on_time_handling"] == {"numerator": 2, "denominator": 3}
    assert figures["closure"] == {"numerator": 2, "denominator": 3}  # one was reopened
    assert figures["dispatch_accuracy"] == {"numerator": 2, "denominator": 3}
    # Street 002's one case went perfectly: it leads the league.
    leader = league[0]
    assert (leader["entity"], leader["score"], leader["grade"]) == ("002", 100.0, "A")

    # Nothing personal or written by people is kept with the facts.
    stored = await service.store.case_events.find_one({"_id": cases[0].case_id})
    assert stored is not None and len(stored["events"]) == len(cases[0].events)
    assert "13800000000" not in str(stored) and "rubbish" not in str(stored)

    drill = await api.get("/scores/street/001/2031-03/on_time_handling/cases", headers=auth)
    assert drill.status_code == 200
    assert drill.json()["numerator"] == sorted([cases[0].case_id, cases[2].case_id])
    assert drill.json()["denominator"] == sorted(c.case_id for c in cases[:3])
    # A department sees the figure, but of the cases behind it only those dispatched to it
    # (WATER had case 2, then returned it): no other department's case ids.
    water_token = await CredentialStore(service.store.case_facts.database).issue(
        Role.department, "WATER"
    )
    water_auth = {"Authorization": f"Bearer {water_token}"}
    theirs = await api.get("/scores/street/001/2031-03/on_time_handling/cases", headers=water_auth)
    assert theirs.status_code == 200, theirs.text
    assert (theirs.json()["numerator"], theirs.json()["denominator"]) == (
        [cases[2].case_id],
        [cases[2].case_id],
    )
    assert theirs.json()["not_shown"] == {"numerator": 1, "denominator": 2}
    assert drill.json()["not_shown"] == {"numerator": 0, "denominator": 0}  # the centre's

    # WATER rightly returned a case: a response, and no dispatch accuracy of its own; the
    # command centre's dispatch accuracy counts the return, case by case.
    water = await api.get("/scores/department/WATER/2031-W10", headers=auth)
    assert water.status_code == 200
    assert "dispatch_accuracy" not in water.json()["indicators"]
    assert water.json()["indicators"]["response"] == {"numerator": 1, "denominator": 1}
    centre = await api.get("/scores/command_centre/COMMAND-CENTRE/2031-W10", headers=auth)
    assert centre.status_code == 200
    assert centre.json()["indicators"]["dispatch_accuracy"] == {"numerator": 3, "denominator": 4}
    returns = await api.get(
        "/scores/command_centre/COMMAND-CENTRE/2031-W10/dispatch_accuracy/cases", headers=auth
    )
    dispatched = sorted(c.case_id for n, c in enumerate(cases) if n != 3)
    assert returns.json()["denominator"] == dispatched
    assert returns.json()["numerator"] == [i for i in dispatched if i != cases[2].case_id]

    # Refusals: no token, a period that is none, an entity nobody scored.
    assert (await api.get("/scores/street/001/2031-03")).status_code == 401
    bad = await api.get("/scores", params={"level": "street", "period": "2031-13"}, headers=auth)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "period"]
    unknown = await api.get("/scores/street/999/2031-03", headers=auth)
    assert unknown.status_code == 404 and unknown.json()["detail"][0]["loc"] == ["path", "entity"]

    # The same through the CLI.
    env = {
        "MONGODB_URI": servers.mongodb,
        "GRIDLOOP_MONGODB_DATABASE": service.database,
        "COLUMNS": "330",  # a place has 13 indicators, each a column
    }
    shown = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["scores", "show", "--level", "street", "--period", "2031-03"],
        env=env,
        terminal_width=330,
    )
    assert shown.exit_code == 0, shown.output
    rows = [
        line for line in shown.output.splitlines() if "Donghuamen" in line or "Jingshan" in line
    ]
    assert len(rows) == 2 and "Jingshan" in rows[0] and "100.00" in rows[0]
    explained = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["scores", "explain", "street", "001", "2031-03", "on_time_handling"],
        env=env,
        terminal_width=330,
    )
    assert explained.exit_code == 0, explained.output
    assert f"numerator:   {cases[0].case_id} {cases[2].case_id}" in explained.output
    assert ": 2 / 3" in explained.output

    # The replay: a rebuild from the topics into another database gives the same scores.
    rebuilt_settings = servers.settings(namespace=service.namespace)
    await rebuild(rebuilt_settings)
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    try:
        rebuilt = ScoreStore(client[rebuilt_settings.mongodb_database])
        for level in set(Level) - ON_READ:  # the grid's people: test_grid_people_scores
            for period in PERIODS.values():
                live = await service.store.league(level, period)
                assert live, f"no {level} scores over {period}"
                assert await rebuilt.league(level, period) == live
    finally:
        await client.drop_database(rebuilt_settings.mongodb_database)
        await client.close()


async def test_gridloop_run_evaluation(servers: Servers, tmp_path: Path) -> None:
    """The service as `gridloop run evaluation` runs it: a case published is scored, the
    scores API answers staff, the big screen and the gauges are served."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    story = Story(f"EV-run-{uuid.uuid4().hex[:6]}", JANUARY).reported().filed().dispatched()
    story.done(rating=5)
    namespace = fresh_namespace()
    await ensure_topics(servers.kafka, namespace=namespace)
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    token = await CredentialStore(client[database]).issue(Role.supervision_centre, "c-1")
    await publish(servers, story.events, namespace)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "MONGODB_URI": servers.mongodb,
        "GRIDLOOP_MONGODB_DATABASE": database,
        "GRIDLOOP_NAMESPACE": namespace,
        "GRIDLOOP_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "GRIDLOOP_EVALUATION_PORT": str(free_port()),
    }
    system = System(env, tmp_path / "logs", ("evaluation",))
    try:
        await asyncio.to_thread(system.start)
        async with httpx.AsyncClient(base_url=system.url("evaluation"), timeout=10) as http:
            auth = {"Authorization": f"Bearer {token}"}
            path = f"/scores/supervisor/sup-7/{JANUARY:%Y-%m-%d}"

            async def scored() -> bool:
                answer = await http.get(path, headers=auth)
                # Filed and closed in time: 100 once every event is in.
                return answer.status_code == 200 and answer.json()["score"] == 100.0

            await eventually(scored, within=60, what="the supervisor's day scored")
            drill = await http.get(f"{path}/filing_rate/cases", headers=auth)
            assert drill.json()["numerator"] == [story.case_id]
            assert (await http.get("/scores?level=grid&period=2032-01")).status_code == 401
            assert (await http.get("/screen")).status_code == 200
            assert "gridloop_records_consumed_total" in (await http.get("/metrics")).text
    finally:
        await asyncio.to_thread(system.stop)
        await client.drop_database(database)
        await client.close()
