"""Answering directly (直接答复) and the centre's own staff scored, on the real broker and
database, with intake's API, the projection, dispatch's consumer and evaluation running in
this process on a namespace and database of this test alone.

A hotline consultation answered from the knowledge base is closed `answered`; no dispatch
event of it reaches Kafka, while a report filed beside it is dispatched (the dispatch
consumer is live); `GET /scores` counts it apart (answered directly, in no filing rate and
no command centre figure). Then built histories of operators, dispatchers and shift leads
are published, and `GET /scores` at their levels equals the figures worked out by hand."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gridloop.auth import CredentialStore, Role
from gridloop.people import People
from schemas.events import Stage
from tests.conftest import Servers
from tests.evaluation_story import HOUR, Story
from tests.helpers import eventually
from tests.integration.scoring_world import ScoringWorld, case_events, scoring_world

PASSWORD = "a long passphrase"
MINUTE = timedelta(minutes=1)
# A consultation (heating) and a report of a broken manhole cover, far apart (no duplicate).
CONSULTATION: dict[str, Any] = {
    "channel": "hotline",
    "kind": "event",
    "class_code": "0102",
    "point": {"lon": 116.4015, "lat": 39.9205},
    "description": "居民咨询今年什么时候开始供暖",
    "reporter": {"name": "王女士", "phone": "13900000001"},
}
COVER: dict[str, Any] = {
    "channel": "hotline",
    "kind": "component",
    "class_code": "0101",
    "point": {"lon": 116.4025, "lat": 39.9205},  # street 001 too; another class: no duplicate
    "description": "井盖破损",
    "reporter": {"name": "赵先生", "phone": "13900000002"},
}
STAFF_MONTH = datetime(2033, 3, 1, 1, tzinfo=UTC)  # 09:00 on 1 March 2033 in Shanghai


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[ScoringWorld]:
    """The whole path: intake, the projection, dispatch's consumer and evaluation."""
    async with scoring_world(servers, _sign_in) as found:
        yield found


@pytest.fixture
async def evaluating(servers: Servers) -> AsyncIterator[ScoringWorld]:
    """Evaluation alone: built histories are scored as they are told, not dispatched."""
    async with scoring_world(servers, _sign_in, dispatching=False) as found:
        yield found


async def _sign_in(credentials: CredentialStore, people: People) -> dict[str, str]:
    # Two operators signed in on the supervision centre's one credential subject.
    for name in ("wang", "li"):
        await people.add(name, PASSWORD, Role.supervision_centre, "centre-demo")
    wang = await people.sign_in("wang", PASSWORD)
    assert wang is not None
    return {
        "hotline": await credentials.issue(Role.hotline, "op-7"),
        "supervisor": await credentials.issue(Role.supervisor, "SUP-0001"),
        "command": await credentials.issue(Role.command_centre, "cmd-1"),
        "wang": wang.token,
    }


async def test_a_consultation_answered_directly_is_closed_and_counted_apart(
    world: ScoringWorld,
) -> None:
    w = world
    asked = await w.intake.post("/reports", json=CONSULTATION, headers=w.auth("hotline"))
    assert asked.status_code == 202, asked.text
    question = asked.json()["case_id"]

    # The operator searches: this season's heating times first; last season's never.
    found = await w.intake.get(
        "/knowledge", params={"q": "今年什么时候开始供暖"}, headers=w.auth("hotline")
    )
    assert found.status_code == 200, found.text
    hits = found.json()
    assert hits[0]["id"] == "heating-2026" and hits[0]["class"] == "供暖"
    assert "heating-2025" not in {h["id"] for h in hits}
    refused = await w.intake.get("/knowledge", params={"q": "供暖"}, headers=w.auth("supervisor"))
    assert refused.status_code == 403

    # An expired entry cannot be used: 422 naming the field, and nothing changes.
    expired = await w.intake.post(
        f"/cases/{question}/answer",
        json={"knowledge_id": "heating-2025"},
        headers=w.auth("hotline"),
    )
    assert expired.status_code == 422, expired.text
    [detail] = expired.json()["detail"]
    assert detail["loc"] == ["body", "knowledge_id"] and detail["type"] == "entry_expired"

    answered = await w.intake.post(
        f"/cases/{question}/answer",
        json={"knowledge_id": "heating-2026"},
        headers=w.auth("hotline"),
    )
    assert answered.status_code == 202, answered.text
    body = answered.json()
    assert (body["state"], body["version"], body["type"]) == ("answered", 2, "case.answered")
    # Ended: the centre can no longer file it.
    late = await w.intake.post(f"/cases/{question}/file", json={}, headers=w.auth("wang"))
    assert late.status_code == 409 and late.json()["state"] == "answered"

    # Beside it, a report the operator wang files (signed in on the shared credential):
    # dispatched by the live dispatch consumer.
    sent = await w.intake.post("/reports", json=COVER, headers=w.auth("hotline"))
    cover = sent.json()["case_id"]
    filed = await w.intake.post(f"/cases/{cover}/file", json={}, headers=w.auth("wang"))
    assert filed.status_code == 202, filed.text

    dispatches = await w.records("dispatches", lambda rs: bool(case_events(rs, cover)))
    assert [e.type for e in case_events(dispatches, cover)] == ["gridloop.case.dispatched"]
    assert case_events(dispatches, question) == []  # never dispatched
    reports = await w.records("reports", lambda rs: len(case_events(rs, cover)) >= 2)
    told = case_events(reports, question)
    assert [e.type for e in told] == ["gridloop.case.reported", "gridloop.case.answered"]
    assert told[1].data.model_dump()["knowledge_id"] == "heating-2026"
    filing = case_events(reports, cover)[-1].data.model_dump()["actor"]
    assert filing == {"role": "supervision_centre", "id": "centre-demo", "person": "wang"}

    # Counted apart: street 001's residents' reports decided at intake are the two; the
    # answered one is in no filing rate and not the command centre's.
    month = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    await eventually(lambda: w.scored("command_centre", month), what="the centre scored")
    [street] = await w.score(f"/scores?level=street&period={month}")
    assert street["entity"] == "001"
    assert street["indicators"]["answered_directly"] == {"numerator": 1, "denominator": 2}
    assert street["indicators"]["filing_rate"] == {"numerator": 1, "denominator": 1}
    drill = await w.score(f"/scores/street/001/{month}/answered_directly/cases")
    assert (drill["numerator"], drill["denominator"]) == ([question], sorted([question, cover]))
    rate = await w.score(f"/scores/street/001/{month}/filing_rate/cases")
    assert rate["denominator"] == [cover]
    [centre] = await w.score(f"/scores?level=command_centre&period={month}")
    assert centre["cases"] == 1
    accuracy = await w.score(
        f"/scores/command_centre/COMMAND-CENTRE/{month}/dispatch_accuracy/cases"
    )
    assert accuracy["denominator"] == [cover]
    # The cover was dispatched by the routing rule: no dispatcher's (a person's) work.
    assert await w.score(f"/scores?level=dispatcher&period={month}") == []


def staff_stories(tag: str) -> list[Story]:
    """Operators wang and li, dispatchers zhao and qian, shift leads sun and zhou."""
    at = STAFF_MONTH
    a = Story(f"{tag}-A", at).reported().filed(operator="wang")
    b = Story(f"{tag}-B", at).reported().breach(Stage.file, "SUPERVISION-CENTRE")
    b.voided(operator="wang")
    c = Story(f"{tag}-C", at).reported(channel="website").verified().filed(operator="li")
    g = Story(f"{tag}-G", at).reported().filed().dispatched(dispatcher="zhao").handled()
    h = Story(f"{tag}-H", at).reported().filed().dispatched("WATER", dispatcher="zhao")
    h.returned("WATER").dispatched("SANITATION", dispatcher="qian")
    j = Story(f"{tag}-J", at).reported().filed().dispatched().requested("r1")
    j.extended(j.at + 9 * HOUR, "r1", "sun", at=j.at + 30 * MINUTE)
    k = Story(f"{tag}-K", at).reported().filed().dispatched().requested("r2")
    k.denied("r2", "sun", k.at + 2 * HOUR)
    m = Story(f"{tag}-M", at).reported().filed().dispatched().requested("r3")
    m.extended(m.at + 9 * HOUR, "r3", "zhou", at=m.at + 61 * MINUTE)
    return [a, b, c, g, h, j, k, m]


async def test_the_centres_staff_scores_equal_the_hand_computation(
    evaluating: ScoringWorld,
) -> None:
    w, tag = evaluating, f"ST-{uuid.uuid4().hex[:6]}"
    events = [env for story in staff_stories(tag) for env in story.events]
    for env in reversed(events):  # out of order: the facts do not depend on it
        await w.producer.publish([env])
    month = "2033-03"
    for level in ("operator", "dispatcher", "shift_lead"):  # two of each, once all are read
        await eventually(partial(w.scored, level, month, 2), what=f"two {level}s scored")

    def table(found: list[dict[str, Any]], indicator: str) -> list[tuple[str, int, int, float]]:
        return [
            (
                s["entity"],
                s["indicators"][indicator]["numerator"],
                s["indicators"][indicator]["denominator"],
                s["score"],
            )
            for s in found
        ]

    # By hand (evaluation.yaml: one indicator each, weight 100; 1 hour to decide):
    # wang filed A in time and voided B after the file clock breached: 1 of 2 → 50.
    # li filed C (verified first) in time: 1 of 1 → 100.
    operators = await w.score(f"/scores?level=operator&period={month}")
    assert table(operators, "on_time_filing") == [("li", 1, 1, 100.0), ("wang", 1, 2, 50.0)]
    assert [s["grade"] for s in operators] == ["A", "D"]
    # zhao's G stood, his H was returned by WATER: 1 of 2; qian's re-dispatch of H stood.
    dispatchers = await w.score(f"/scores?level=dispatcher&period={month}")
    assert table(dispatchers, "dispatch_accuracy") == [("qian", 1, 1, 100.0), ("zhao", 1, 2, 50.0)]
    # sun approved r1 after 29 minutes, denied r2 after 1 h 59 min: 1 of 2; zhou
    # approved r3 after exactly an hour: in time.
    leads = await w.score(f"/scores?level=shift_lead&period={month}")
    assert table(leads, "on_time_approval") == [("zhou", 1, 1, 100.0), ("sun", 1, 2, 50.0)]
    # Explainable down to the cases.
    late = await w.score(f"/scores/shift_lead/sun/{month}/on_time_approval/cases")
    assert (late["numerator"], late["denominator"]) == ([f"{tag}-J"], [f"{tag}-J", f"{tag}-K"])
    wang = await w.score(f"/scores/operator/wang/{month}/on_time_filing/cases")
    assert (wang["numerator"], wang["denominator"]) == ([f"{tag}-A"], [f"{tag}-A", f"{tag}-B"])
