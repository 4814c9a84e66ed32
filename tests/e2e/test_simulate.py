"""`gridloop simulate` end to end: its own embedded system on a compressed clock, the
demo pack, a few seconds of reports; the cases go round the whole loop, and the system's
own projection says so, not only the simulator's counts."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from gridloop.config import DEMO_CITY_PACK
from gridloop.mongo import Document
from schemas.events import Channel
from system.simulate.profile import Behaviour, Profile
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
OPTIONS = Options(rate=4, duration=8, speed=1800, drain=40, profile=Profile(seed=3, behaviour=BUSY))


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


@pytest.mark.timeout(600)  # its own system and a simulated day: 40 s alone, minutes under load
def test_a_compressed_simulation_goes_round_the_loop(tmp_path: Path) -> None:
    seen: list[tuple[Counter[str], Counter[str]]] = []

    def then(target: Target, tally: Tally) -> None:
        seen.append(asyncio.run(_caught_up(target, tally)))

    tally = simulate_own(DEMO_CITY_PACK, tmp_path, OPTIONS, None, then)

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
