"""`gridloop scores rebuild`, the command an operator runs (through typer's CliRunner), on
the real broker and database: it drops what the database held, replays every lifecycle
topic, skips a poison record and scores what it read exactly as the store does when fed
the same events directly.

The cases are reported in May 2033, a month no other test writes, so their scores are
this test's alone although every test shares the topics (the rebuild reads them all)."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime

from pymongo import AsyncMongoClient
from typer.testing import CliRunner

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.mongo import Document
from gridloop.scoring import Level
from gridloop.topology import named
from schemas.envelope import Envelope
from services.evaluation.store import ScoreStore
from system.cli import app as cli
from tests.conftest import Servers, fresh_namespace
from tests.evaluation_story import OTHER_GRID, Story

MAY = datetime(2033, 5, 10, 1, tzinfo=UTC)  # Tuesday 10 May 2033, 09:00 in Shanghai


def events(tag: str) -> list[Envelope]:
    cases = [
        Story(f"RB-{tag}-0", MAY).reported().filed().dispatched().acknowledged().done(rating=5),
        Story(f"RB-{tag}-1", MAY).reported().filed().dispatched().breach().done(rating=2),
        Story(f"RB-{tag}-2", MAY).reported(grid=OTHER_GRID).filed(grid=OTHER_GRID).dispatched(),
    ]
    return [e for s in cases for e in s.events]


async def publish(kafka: str, found: list[Envelope], namespace: str) -> None:
    producer = EventProducer(kafka, "rebuild-test", namespace)
    await producer.start()
    try:
        await producer.publish(found)
        await producer.send_raw(
            named(namespace, "reports"), b"junk-rebuild", b"{oops", [("ce_type", b"x")]
        )
    finally:
        await producer.stop()


async def test_gridloop_scores_rebuild(servers: Servers) -> None:
    published = events(uuid.uuid4().hex[:6])
    namespace = fresh_namespace()  # the rebuild replays this test's topics alone
    await ensure_topics(servers.kafka, namespace=namespace)
    await publish(servers.kafka, published, namespace)
    database = f"test_{uuid.uuid4().hex[:12]}"
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    pack = load_city_pack(DEMO_CITY_PACK)
    stale = ScoreStore(client[database], pack)
    await stale.scores.insert_one({"_id": "street/001/2033-05", "level": "street", "score": 1})
    reference = ScoreStore(client[f"{database}_ref"], pack)
    try:
        await reference.apply_many(published)
        while await reference.recompute_dirty():
            pass
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
            "MONGODB_URI": servers.mongodb,
            "GRIDLOOP_MONGODB_DATABASE": database,
            "GRIDLOOP_NAMESPACE": namespace,
        }
        ran = await asyncio.to_thread(CliRunner().invoke, cli, ["scores", "rebuild"], env=env)
        assert ran.exit_code == 0, ran.output
        said = re.search(r"rebuilt the scores from (\d+) event\(s\); skipped (\d+)", ran.output)
        assert said is not None, ran.output
        applied, skipped = map(int, said.groups())
        assert (applied, skipped) == (len(published), 1)

        rebuilt = ScoreStore(client[database], pack)
        assert await rebuilt.pending() == 0  # every score recomputed before it returns
        for level in (Level.street, Level.department, Level.supervisor):
            for period in ("2033-05", "2033-W19", "2033-05-10"):
                expected = await reference.league(level, period)
                assert expected, f"no {level} scores over {period}"
                assert await rebuilt.league(level, period) == expected
        # What the database held before is gone (the stale 1-point score of street 001).
        street = await rebuilt.score(Level.street, "001", "2033-05")
        assert street is not None and street.score != 1 and street.cases == 2
    finally:
        await client.drop_database(database)
        await client.drop_database(f"{database}_ref")
        await client.close()
