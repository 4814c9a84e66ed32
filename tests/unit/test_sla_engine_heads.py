"""The SLA engine decides on the case's latest committed version, like every command: a
breach due on a case whose head moved past what the engine applied (the handling is on its
way through the log) is held back and looked at again, not sent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from schemas.envelope import Envelope
from schemas.events import Actor, CaseDispatched, CaseFiled, CaseReported, Role, SlaEvent
from services.sla.engine import Engine, Versions

NOW = datetime(2026, 3, 3, 4, 0, tzinfo=UTC)  # a Tuesday, 12:00 in Beijing
ACTOR = Actor(role=Role.supervisor, id="s")
GRID = "110101001001001"


def opened(case_id: str) -> list[Envelope]:
    """A case dispatched with a deadline an hour ago: its handling breach is due."""
    common = {"case_id": case_id, "actor": ACTOR}
    return [
        Envelope(
            CaseReported(
                **common,
                version=1,
                channel="supervisor",
                kind="event",
                class_code="0505",
                point={"lon": 116.4, "lat": 39.92},
                grid_code=GRID,
                description="x",
            ),
            "/t",
            NOW - timedelta(hours=3),
        ),
        Envelope(
            CaseFiled(**common, version=2, kind="event", class_code="0505", grid_code=GRID),
            "/t",
            NOW - timedelta(hours=3),
        ),
        Envelope(
            CaseDispatched(
                **common,
                version=3,
                department="TRAFFIC-POLICE",
                deadline=NOW - timedelta(hours=1),
                rule="test",
            ),
            "/t",
            NOW - timedelta(hours=3),
        ),
    ]


class World:
    def __init__(self, heads: dict[str, int], versions: Versions | None = None) -> None:
        self.sent: list[SlaEvent] = []
        self.heads = heads
        policy = load_city_pack(DEMO_CITY_PACK).sla
        every = set(range(6))
        self.engine = Engine(policy, {}, self.send, lambda: every, versions or self.versions)

    async def send(self, event: SlaEvent) -> asyncio.Future[object]:
        self.sent.append(event)
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def versions(self, case_ids: list[str]) -> dict[str, int]:
        return {c: self.heads[c] for c in case_ids if c in self.heads}


async def test_a_breach_is_held_while_the_head_is_ahead_and_sent_once_the_engine_caught_up() -> (
    None
):
    world = World({"C-ahead": 4, "C-level": 3})  # C-ahead was handled at v4; C-none: no head
    for case_id in ("C-ahead", "C-level", "C-none"):
        for env in opened(case_id):
            world.engine.track(env)

    await world.engine.scan(NOW)

    assert {e.case_id for e in world.sent} == {"C-level", "C-none"}
    assert world.engine.index.when("C-ahead") is not None  # looked at again later
    world.heads["C-ahead"] = 3  # (as if the engine had applied v4: its head and table agree)
    await world.engine.scan(NOW + timedelta(seconds=10))
    assert "C-ahead" in {e.case_id for e in world.sent}


async def test_an_unreadable_database_does_not_hold_back_a_breach() -> None:
    async def down(case_ids: list[str]) -> dict[str, int]:
        raise OSError("the database does not answer")

    world = World({}, down)
    for env in opened("C-1"):
        world.engine.track(env)
    await world.engine.scan(NOW)
    assert [e.case_id for e in world.sent if e.stage == "handle"] != []
