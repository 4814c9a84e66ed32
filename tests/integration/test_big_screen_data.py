"""The big screen's figures from a real MongoDB-protocol server: open cases by stage and by
the light of the stage they are in, counted by one aggregation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.lifecycle import State
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import (
    CaseChecked,
    CaseClosed,
    CaseDispatched,
    CaseEvent,
    CaseExtended,
    CaseFiled,
    CaseHandled,
    CaseReported,
    SlaBreach,
    SlaEvent,
    SlaWarning,
)
from services.evaluation.screen import ScreenData, screen_data
from services.evaluation.store import ScoreStore
from services.projections.store import CaseStore
from tests.conftest import Servers
from tests.samples import sample_of

PACK = load_city_pack(DEMO_CITY_PACK)
NOW = datetime.fromisoformat("2026-11-20T15:00:00+08:00")
DUE = NOW - timedelta(hours=2)
FLOW: list[type[CaseEvent]] = [
    CaseReported,
    CaseFiled,
    CaseDispatched,
    CaseHandled,
    CaseChecked,
    CaseClosed,
]


def lifecycle(case_id: str, steps: int, at: datetime) -> list[Envelope]:
    """The case's first `steps` transitions of the closed loop, a minute apart."""
    events: list[CaseEvent] = [
        sample_of(
            kind,
            case_id=case_id,
            version=n + 1,
            **({"deadline": DUE} if kind is CaseDispatched else {}),
        )
        for n, kind in enumerate(FLOW[:steps])
    ]
    return [Envelope(e, "/tests", at + timedelta(minutes=i)) for i, e in enumerate(events)]


def sla(kind: type[SlaEvent], case_id: str, stage: str, version: int, **more: Any) -> Envelope:
    data = sample_of(kind, case_id=case_id, stage=stage, case_version=version, deadline=DUE, **more)
    return Envelope(data, "/tests", DUE)


@pytest.fixture
async def screen(servers: Servers) -> AsyncIterator[ScreenData]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = client[f"test_{uuid.uuid4().hex[:12]}"]
    early = NOW - timedelta(days=3)
    extension = sample_of(
        CaseExtended, case_id="D-extended", version=4, deadline=NOW + timedelta(days=1)
    )
    events = [
        *lifecycle("R-new", 1, NOW - timedelta(hours=1)),  # reported today
        *lifecycle("F-late", 2, early),
        sla(SlaBreach, "F-late", "dispatch", 2),
        *lifecycle("D-red", 3, early),
        sla(SlaBreach, "D-red", "handle", 3),
        *lifecycle("D-yellow", 3, early),
        sla(SlaWarning, "D-yellow", "handle", 3),
        *lifecycle("D-extended", 3, early),
        sla(SlaBreach, "D-extended", "handle", 3),  # then the deadline moved: green again
        Envelope(extension, "/tests", DUE + timedelta(hours=1)),
        *lifecycle("H-handled", 4, early),
        sla(SlaBreach, "H-handled", "handle", 3),  # late, but it has left the handling stage
        *lifecycle("C-closed", 6, NOW - timedelta(hours=1)),  # reported and closed today
    ]
    store = CaseStore(db)
    for env in events:
        await store.apply(env)
    yield await screen_data(ScoreStore(db, PACK), NOW)
    await client.drop_database(db.name)
    await client.close()


async def test_open_cases_are_counted_by_stage_and_the_light_of_that_stage(
    screen: ScreenData,
) -> None:
    rows = {r.state: (r.green, r.yellow, r.red) for r in screen.stages}
    assert rows[State.reported] == (1, 0, 0)
    assert rows[State.filed] == (0, 0, 1)
    assert rows[State.dispatched] == (1, 1, 1)  # extended, warned, breached
    assert rows[State.handled] == (1, 0, 0)  # the check stage has no light yet
    assert State.closed not in rows
    assert screen.open_cases == 6
    assert screen.lights == {"green": 3, "yellow": 1, "red": 2}


async def test_today_and_this_month_are_counted_in_the_city_s_time(screen: ScreenData) -> None:
    assert (screen.reported_today, screen.closed_today) == (2, 1)
    assert (screen.reported_this_month, screen.closed_this_month) == (7, 1)
    assert screen.period == "2026-11"
    assert screen.district == PACK.city.district.name
    assert screen.departments == [] and screen.streets == []  # nothing scored in this database


async def test_open_cases_are_on_the_map_and_the_last_30_days_in_the_trend(
    screen: ScreenData,
) -> None:
    # Counted by cell: every open case with a point is in one, and no closed one.
    assert sum(s.cases for s in screen.spots) == screen.open_cases == 6
    reds = [s for s in screen.spots if s.light == "red"]
    assert reds, "a breached case's cell shows red, the worst light in it"
    assert [d.day for d in screen.trend][-1] == "2026-11-20"  # today, in the city's time
    assert len(screen.trend) == 30 and screen.trend[0].day == "2026-10-22"
    assert (screen.trend[-1].reported, screen.trend[-1].closed) == (2, 1)
    assert sum(d.reported for d in screen.trend) == 7
    assert sum(d.closed for d in screen.trend) == 1
    assert screen.trend[-4].reported == 5  # three days ago: the five early cases
