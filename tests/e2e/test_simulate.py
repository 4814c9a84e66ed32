"""`gridloop simulate` end to end: its own embedded system on a compressed clock, the
demo pack, a few seconds of reports; the cases go round the whole loop, and the system's
own projection says so, not only the simulator's counts."""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from gridloop.config import DEMO_CITY_PACK
from gridloop.mongo import Document
from schemas.events import Channel
from system.simulate.profile import Behaviour, GridWork, Profile
from system.simulate.run import Options, Target, simulate_own
from system.simulate.summary import Tally

# Quick people and many unhappy endings: every path of the loop within seconds.
BUSY = Behaviour(
    verify_median=timedelta(minutes=10),
    acknowledge_median=timedelta(minutes=5),
    handle_median=timedelta(minutes=30),
    check_median=timedelta(minutes=15),
    check_fail_share=0.3,
    feedback_share={Channel.website: 0.9, Channel.hotline: 0.9, Channel.supervisor: 0.9},
    ratings=(0.2, 0.2, 0.2, 0.2, 0.2),
    feedback_median=timedelta(minutes=20),
    spread=0.5,
)
# The grid's people: every grid out (the demo pack has 8), visits that raise disputes and
# hazards, the disputes' three paths about equally, everyone fixes something on the spot.
FIELD = GridWork(
    findings={"none": 0.2, "dispute": 0.45, "sanitation": 0.25, "need": 0.1},
    case_share=0.6,
    dispute_at_grid=0.34,
    dispute_beyond_authority=0.33,
    mediate_median=timedelta(minutes=30),
    self_handling_share=1.0,
)
PROFILE = Profile(seed=3, behaviour=BUSY, grid_work=FIELD)
OPTIONS = Options(rate=4, duration=8, speed=1800, drain=40, profile=PROFILE)


async def _projection(target: Target) -> tuple[Counter[str], Counter[str]]:
    """Cases by state, and the steps of every timeline, as the system projected them."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(target.mongodb[0])
    try:
        states: Counter[str] = Counter()
        steps: Counter[str] = Counter()
        async for case in client[target.mongodb[1]]["cases"].find({}):
            states[case["state"]] += 1
            steps.update(e["type"] for e in case.get("timeline", []))
        return states, steps
    finally:
        await client.close()


async def _grid_records(target: Target) -> Counter[str]:
    """What the grid service and the case projection recorded of the grid's people."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(target.mongodb[0])
    db = client[target.mongodb[1]]
    try:
        seen: Counter[str] = Counter()
        async for patrol in db["patrols"].find({}):
            seen["patrols"] += 1
            seen["patrols_ended"] += patrol.get("ended_at") is not None
        seen["track_pieces"] = await db["patrol_pieces"].count_documents({})
        async for visit in db["grid_visits"].find({}):
            seen["visits"] += 1
            findings = visit.get("findings", [])
            seen["findings"] += len(findings)
            seen["reported"] += sum(1 for f in findings if f.get("case_id"))
        async for case in db["cases"].find({"kind": "dispute"}):
            seen["disputes"] += 1
            types = Counter(e["type"] for e in case.get("timeline", []))
            seen["escalated"] += types["dispute_escalated"]
            # An explanation annotates the version it is about: the tiers' sets say it.
            seen["overdue"] += len(case.get("tiers_overdue", []))
            seen["explained"] += len(case.get("tiers_explained", []))
            if case["state"] == "closed":
                seen[f"closed_at_{case.get('tier')}"] += 1
        seen["self_handled"] = await db["cases"].count_documents({"state": "self_handled"})
        return seen
    finally:
        await client.close()


async def _caught_up(target: Target, tally: Tally) -> tuple[Counter[str], Counter[str]]:
    """The projection once it holds every closure the simulator was answered (the last
    answers may be a moment ahead of it), or as it is after 15 s."""
    for _ in range(60):
        states, steps = await _projection(target)
        rated = tally.feedback + tally.callbacks  # a callback's answers rate the case too
        if steps["closed"] >= tally.closed and steps["feedback"] >= rated:
            break
        await asyncio.sleep(0.25)
    return states, steps


def _pack_with_a_short_grid_limit(tmp_path: Path) -> Path:
    """The demo pack, but the grid has 2 working hours to mediate a dispute (not 3 days):
    the grid's breach and the escalation on it fall within the simulated day."""
    pack = tmp_path / "pack"
    shutil.copytree(DEMO_CITY_PACK, pack)
    sla = pack / "sla.yaml"
    text = sla.read_text(encoding="utf-8")
    assert "{tier: grid, limit: P3D}" in text
    sla.write_text(text.replace("{tier: grid, limit: P3D}", "{tier: grid, limit: PT2H}"))
    return pack


@pytest.mark.timeout(600)  # its own system and a simulated day: 40 s alone, minutes under load
def test_a_compressed_simulation_goes_round_the_loop(tmp_path: Path) -> None:
    seen: list[tuple[Counter[str], Counter[str]]] = []
    grid: list[Counter[str]] = []

    def then(target: Target, tally: Tally) -> None:
        seen.append(asyncio.run(_caught_up(target, tally)))
        grid.append(asyncio.run(_grid_records(target)))

    pack = _pack_with_a_short_grid_limit(tmp_path)
    tally = simulate_own(pack, tmp_path / "run", OPTIONS, None, then)

    assert tally.errors == 0, tally.problems
    assert tally.sent == tally.accepted > 10
    assert tally.dispatched >= tally.handled >= tally.closed > 3
    assert tally.reworked >= 1 and tally.feedback >= 1
    [(states, steps)] = seen
    # What the simulator was answered is what the system recorded: each closure, rating
    # and rework (failed checks and dissatisfied residents) is on a case's timeline.
    assert (steps["closed"], steps["feedback"]) == (tally.closed, tally.feedback + tally.callbacks)
    # The hotline called its reporters back (回访): the answered callbacks and the calls
    # that reached nobody are on the timelines, as many as the simulator made.
    assert tally.callbacks >= 1
    assert steps["gridloop.case.callback_answered"] == tally.callbacks
    assert steps["gridloop.case.callback_unreached"] == tally.callbacks_unreached
    assert steps["rework"] == tally.reworked
    assert steps["handled"] == tally.handled and steps["returned"] == tally.returned
    assert states["closed"] + states["evaluated"] >= 1

    # The grid's people: what the simulator did is what the grid service and the case
    # projection recorded — patrols with their tracks, visits and their findings, disputes
    # closed at the grid and at the community (escalated as beyond the grid's authority or
    # up on its breach, then explained), problems fixed on the spot.
    [records] = grid
    assert records["patrols"] == tally.patrols == tally.patrols_ended == records["patrols_ended"]
    assert tally.patrols >= 8 + 4  # the 8 grids' managers and the 4 supervisors
    assert records["track_pieces"] == tally.track_pieces >= tally.patrols
    assert (records["visits"], records["findings"]) == (tally.visits, tally.findings)
    assert records["reported"] == tally.finding_cases + tally.disputes
    assert records["disputes"] == tally.disputes
    assert records["closed_at_grid"] == tally.disputes_closed_grid >= 1
    assert records["closed_at_community"] == tally.disputes_closed_above >= 2
    assert tally.disputes_escalated >= 1 and tally.disputes_up_on_breach >= 1
    assert records["escalated"] == tally.disputes_escalated + tally.disputes_up_on_breach
    assert records["overdue"] == records["explained"] == tally.disputes_explained
    assert tally.disputes_explained == tally.disputes_up_on_breach
    assert records["self_handled"] == tally.self_handled >= 8
