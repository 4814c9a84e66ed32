"""Self-handling (自处置) and the people's scores on the real broker and database: intake's
API, the projection, dispatch's consumer and evaluation run in this process on a namespace
and database of this test alone.

A supervisor fixes exposed garbage in their grid with photos before and after: one request
opens and ends the case (`self_handled`), a retry under its Idempotency-Key gets the same
answer and makes nothing new, no dispatch of it reaches Kafka, the projection shows it, and
`GET /scores` counts it apart. Refusals (a class not allowed, a photo missing, a grid not
theirs) change nothing. Then the hand-built month of tests/people_story.py is published and
`GET /scores` answers the figures worked out by hand (漏报率, self-handling, the composite).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from gridloop.auth import CredentialStore, Role
from gridloop.people import People
from tests.conftest import Servers
from tests.evaluation_story import GRID
from tests.helpers import eventually
from tests.integration.scoring_world import ScoringWorld, case_events, scoring_world
from tests.people_story import SUP3_SCORE, people_stories

GARBAGE: dict[str, Any] = {
    "kind": "event",
    "class_code": "0102",  # exposed garbage: self_handling in the demo pack
    "point": {"lon": 116.4005, "lat": 39.9205},  # grid …001001, SUP-0001's
    "description": "暴露垃圾 a bag of rubbish by the kerb",
    "note": "picked it up and put it in the bin",
}
PEOPLE_MONTH = datetime(2034, 5, 8, 1, tzinfo=UTC)  # 09:00 on Monday 8 May 2034, Shanghai


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[ScoringWorld]:
    async with scoring_world(servers, _sign_in) as found:
        yield found


async def _sign_in(credentials: CredentialStore, _: People) -> dict[str, str]:
    return {
        "supervisor": await credentials.issue(Role.supervisor, "SUP-0001"),
        "manager": await credentials.issue(Role.grid_staff, "GM-0001"),
        "command": await credentials.issue(Role.command_centre, "cmd-1"),
    }


def _refusal(answer: httpx.Response) -> tuple[int, list[str], str]:
    [detail] = answer.json()["detail"]
    return answer.status_code, detail["loc"], detail["type"]


async def test_a_supervisor_fixes_garbage_on_the_spot_once(world: ScoringWorld) -> None:
    w = world
    before, after = await w.upload(b"before"), await w.upload(b"after")
    body = GARBAGE | {"before": [before], "after": [after]}
    post = partial(w.intake.post, "/self-handling")

    # Refused, each naming the field; nothing is created.
    illegal = body | {"class_code": "0101"}  # an illegal structure is no fix on the spot
    refused = await post(json=illegal, headers=w.auth("supervisor"))
    assert _refusal(refused) == (422, ["body", "class_code"], "self_handling_not_allowed")
    refused = await post(json=body | {"after": []}, headers=w.auth("supervisor"))
    assert _refusal(refused) == (422, ["body", "after"], "missing")
    elsewhere = body | {"point": {"lon": 116.4025, "lat": 39.9205}}  # SUP-0002's grid
    refused = await post(json=elsewhere, headers=w.auth("supervisor"))
    assert _refusal(refused) == (403, ["body", "point"], "outside_own_grids")
    # A grid manager's grids are the staff register's (GM-0001: …001001 alone).
    refused = await post(json=elsewhere, headers=w.auth("manager"))
    assert _refusal(refused) == (403, ["body", "point"], "outside_own_grids")
    refused = await post(json=body, headers=w.auth("command"))
    assert refused.status_code == 403
    assert await w.db["case_heads"].count_documents({}) == 0

    key = {"Idempotency-Key": f"fix-{uuid.uuid4()}"}
    done = await post(json=body, headers=w.auth("supervisor") | key)
    assert done.status_code == 202, done.text
    answer = done.json()
    assert (answer["state"], answer["version"], answer["type"]) == (
        "self_handled",
        2,
        "case.self_handled",
    )
    case = answer["case_id"]
    again = await post(json=body, headers=w.auth("supervisor") | key)
    assert (again.status_code, again.json()) == (202, answer)
    other = await post(json=body | {"note": "another fix"}, headers=w.auth("supervisor") | key)
    assert other.status_code == 422  # the key names another request
    assert await w.db["case_heads"].count_documents({}) == 1

    reports = await w.records("reports", lambda rs: len(case_events(rs, case)) >= 2)
    told = case_events(reports, case)
    assert [e.type for e in told] == ["gridloop.case.reported", "gridloop.case.self_handled"]
    assert told[0].data.model_dump()["media"] == [before]
    assert told[1].data.model_dump()["media"] == [after]

    async def projected() -> bool:
        seen = await w.intake.get(f"/cases/{case}", headers=w.auth("supervisor"))
        return seen.status_code == 200 and seen.json()["state"] == "self_handled"

    await eventually(projected, what="the projection shows it self-handled")
    seen = (await w.intake.get(f"/cases/{case}", headers=w.auth("supervisor"))).json()
    assert seen["grid_code"] == "110101001001001" and seen["self_handled_at"]
    assert [t["type"] for t in seen["timeline"]] == ["case.reported", "case.self_handled"]
    photo = await w.intake.get(f"/media/{after}", headers=w.auth("command"))
    assert photo.status_code == 200  # linked to its case: staff read it

    # The grid manager fixes another bag in the same grid: the grid's, not the supervisor's.
    theirs = body | {"before": [await w.upload(b"b2")], "after": [await w.upload(b"a2")]}
    fixed = await post(json=theirs | {"description": "another bag"}, headers=w.auth("manager"))
    assert fixed.status_code == 202 and fixed.json()["state"] == "self_handled", fixed.text

    # Counted apart: the street's and the supervisor's self-handling, no filing rate, and
    # nothing for the command centre (the dispatch consumer is live; it sent nothing).
    month = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    await eventually(partial(w.scored, "street", month), what="the street scored")
    # Both fixes folded (the street is scored once the first one is: not enough to wait on).
    await eventually(partial(_self_handled_folded, w, 2), what="both fixes folded")
    [street] = await w.score(f"/scores?level=street&period={month}")
    assert street["indicators"]["self_handled"] == {"numerator": 2, "denominator": 2}
    assert street["indicators"]["filing_rate"] == {"numerator": 0, "denominator": 0}
    assert street["indicators"]["missed_reports"] == {"numerator": 0, "denominator": 0}
    [supervisor] = await w.score(f"/scores?level=supervisor&period={month}")
    assert supervisor["entity"] == "SUP-0001"
    assert supervisor["indicators"]["self_handled"] == {"numerator": 1, "denominator": 1}
    assert supervisor["score"] is None  # nothing it is weighted on applied
    assert supervisor["cases"] == 1
    assert await w.score(f"/scores?level=command_centre&period={month}") == []
    dispatches = await w.records("dispatches", lambda rs: True)
    assert case_events(dispatches, case) == []


async def test_people_scores_equal_the_hand_computation(world: ScoringWorld) -> None:
    w, tag = world, f"PS-{uuid.uuid4().hex[:6]}"
    events = [env for story in people_stories(tag, PEOPLE_MONTH) for env in story.events]
    for env in reversed(events):  # out of order: the facts do not depend on it
        await w.producer.publish([env])
    month = "2034-05"
    await eventually(partial(w.scored, "supervisor", month, 2), what="two supervisors")
    await eventually(partial(w.scored, "grid", month, 2), what="two grids")

    def ratio(score: dict[str, Any], indicator: str) -> tuple[int, int]:
        found = score["indicators"][indicator]
        return found["numerator"], found["denominator"]

    supervisors = {
        s["entity"]: s for s in await w.score(f"/scores?level=supervisor&period={month}")
    }
    sup3 = supervisors["sup-3"]
    assert ratio(sup3, "missed_reports") == (2, 3)
    assert ratio(sup3, "self_handled") == (1, 2)
    assert ratio(sup3, "filing_rate") == (1, 1)
    assert ratio(sup3, "on_time_verification") == (2, 2)
    assert (sup3["score"], sup3["grade"], sup3["cases"]) == (SUP3_SCORE, "B", 5)
    assert ratio(supervisors["sup-7"], "missed_reports") == (0, 1)
    drill = await w.score(f"/scores/supervisor/sup-3/{month}/missed_reports/cases")
    assert (drill["numerator"], drill["denominator"]) == (
        [f"{tag}-A", f"{tag}-E"],
        [f"{tag}-A", f"{tag}-B", f"{tag}-E"],
    )
    grids = {s["entity"]: s for s in await w.score(f"/scores?level=grid&period={month}")}
    assert ratio(grids[GRID], "missed_reports") == (2, 3)
    assert ratio(grids[GRID], "self_handled") == (2, 3)
    streets = {s["entity"]: s for s in await w.score(f"/scores?level=street&period={month}")}
    assert ratio(streets["001"], "self_handled") == (2, 3)
    assert ratio(streets["001"], "filing_rate") == (3, 4)  # A B E of A B C E: D, G not in it


async def _self_handled_folded(w: ScoringWorld, cases: int) -> bool:
    return await w.store.case_facts.count_documents({"facts.self_handled": True}) >= cases
