"""The grid's people's scores (issue 17 item 7) on the real broker and database: the
hand-built month of tests/grid_people_story.py published (disputes, and the people's cases
of tests/people_story.py), its doors, visits and staff register in the grid service's
collections; `GET /scores?level=grid_staff|grid_team` answers the figures worked out by
hand, drills down to the households and cases behind them, and answers the same after the
evaluation collections are rebuilt from the topics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
from typer.testing import CliRunner

from gridloop.auth import CredentialStore, Role
from gridloop.kafka.replay import replay
from gridloop.people import People
from gridloop.visits import HEADS, HOUSEHOLDS, VISITS
from system.cli import app as cli
from tests.conftest import Servers
from tests.evaluation_story import GRID
from tests.grid_people_story import (
    GM1_SCORE,
    TEAM_SCORE,
    dispute_stories,
    doors,
    spells,
    visits,
)
from tests.helpers import eventually
from tests.integration.scoring_world import ScoringWorld, scoring_world
from tests.people_story import people_stories

MONTH = "2026-11"


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[ScoringWorld]:
    async with scoring_world(servers, _command) as found:
        yield found


async def _command(credentials: CredentialStore, _: People) -> dict[str, str]:
    return {"command": await credentials.issue(Role.command_centre, "cmd-1")}


async def _seed_grid_service(w: ScoringWorld, tag: str) -> None:
    """What the grid service keeps: its register of doors, visit log and staff register."""
    await w.db[HOUSEHOLDS].insert_many(doors(tag))
    await w.db[VISITS].insert_many(visits(tag))
    await w.db[HEADS].insert_one({"_id": GRID, "rev": 1, "spells": spells(), "outbox": []})


async def _people(w: ScoringWorld) -> dict[str, Any]:
    found = {}
    for level in ("grid_staff", "grid_team"):
        for score in await w.score(f"/scores?level={level}&period={MONTH}"):
            found[f"{level}/{score['entity']}"] = score
    return found


async def test_grid_people_scores_equal_the_hand_computation_and_survive_a_rebuild(
    world: ScoringWorld,
    servers: Servers,
) -> None:
    w, tag = world, "GP"
    await _seed_grid_service(w, tag)
    stories = dispute_stories(tag) + people_stories(tag)
    for env in [env for story in stories for env in story.events]:
        await w.producer.publish([env])
    await eventually(partial(w.scored, "grid", MONTH, 2), what="two grids")
    await eventually(partial(_cases_counted, w, len(stories)), what="every case folded")

    found = await _people(w)
    gm1, team = found["grid_staff/GM-1"], found[f"grid_team/{GRID}"]
    assert (gm1["score"], gm1["grade"], gm1["cases"]) == (GM1_SCORE, "D", 3)
    assert (team["score"], team["grade"], team["cases"]) == (TEAM_SCORE, "C", 9)
    assert team["name"].endswith(" 组团")  # a doctor on its register: a service team
    assert set(found) == {"grid_staff/GM-1", "grid_staff/GM-2", f"grid_team/{GRID}"}

    drill = await w.score(f"/scores/grid_staff/GM-1/{MONTH}/visit_coverage/cases")
    assert (drill["numerator"], drill["denominator"]) == ([f"{tag}-h1"], [f"{tag}-h1", f"{tag}-h2"])
    drill = await w.score(f"/scores/grid_team/{GRID}/{MONTH}/disputes_solved_here/cases")
    assert (drill["numerator"], drill["denominator"]) == ([f"{tag}-D1"], [f"{tag}-D1", f"{tag}-D2"])
    one = await w.score(f"/scores/grid_staff/GM-1/{MONTH}")
    assert one["score"] == GM1_SCORE
    missing = await w.scores.get(f"/scores/grid_staff/GM-9/{MONTH}", headers=w.auth("command"))
    assert missing.status_code == 404

    # `gridloop scores show` reads the same, by the pack's weights.
    system = {
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "MONGODB_URI": servers.mongodb,
        "GRIDLOOP_MONGODB_DATABASE": w.db.name,
        "GRIDLOOP_NAMESPACE": w.namespace,
    }
    args = ["scores", "show", "--level", "grid_staff", "--period", MONTH, "--json"]
    ran = await asyncio.to_thread(CliRunner().invoke, cli, args, env=system)
    assert ran.exit_code == 0, ran.output
    shown = {s["entity"]: s["score"] for s in json.loads(ran.output)}
    assert shown["GM-1"] == GM1_SCORE

    # The rebuild from the topics (as `gridloop scores rebuild` does it): the same scores.
    await w.store.drop()
    await w.store.create_indexes()
    await replay(w.kafka, w.store.apply_many, w.namespace)
    while await w.store.pending():
        await w.store.recompute_dirty()
    assert await _people(w) == found


async def _cases_counted(w: ScoringWorld, cases: int) -> bool:
    return await w.store.case_facts.count_documents({"facts.reported_at": {"$ne": None}}) >= cases
