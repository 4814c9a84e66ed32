"""A hand-built month of one grid's disputes and visits for the grid's people's scores
(issue 17 item 7): shared by the unit test of the figures and the integration test that
`GET /scores` answers the same.

Grid …002001 (tests/evaluation_story.py `GRID`), worked by grid manager GM-1 and team
member GM-2 (a doctor) in November 2026:

    disputes   D1  closed by the grid in time                  solved here, on time
               D2  the grid's clock broke, up on the breach,    not solved here, late
                   closed by the community
               D3  passed up beyond the grid's authority in     (not closed), on time
                   time, still with the community
    doors      h1 rented, h2 owner-occupied, h3 vacant (not to visit), h4 left the
               register on 10 November (not to visit at the month's end)
    visits     GM-1: h1 on 5 November, h2 on 3 October (another month)
               GM-2: h2 on 20 November
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.envelope import Envelope
from schemas.events import CaseReported, DisputeClosed, DisputeEscalated, SlaBreach, Stage
from tests.evaluation_story import GRID, START, Story

COMMUNITY = GRID[6:12]
MANAGER = {"role": "grid_staff", "id": "GM-1"}
HOUR = timedelta(hours=1)


def _dispute(story: Story) -> Story:
    return story._step(
        CaseReported,
        story.at,
        actor={"role": "citizen", "id": "web"},
        channel="website",
        class_code="0101",
        kind="dispute",
        point={"lon": 116.4, "lat": 39.9},
        grid_code=GRID,
        description="邻里纠纷",
        reporter={},
    )


def _up(story: Story, cause: str) -> Story:
    return story._step(
        DisputeEscalated,
        None,
        actor=MANAGER,
        from_tier="grid",
        from_office=GRID,
        tier="community",
        office=COMMUNITY,
        cause=cause,
        deadline=story.at + 5 * 24 * HOUR,
    )


def _closed(story: Story, tier: str, office: str) -> Story:
    return story._step(DisputeClosed, None, actor=MANAGER, tier=tier, office=office, confirmed=True)


def _grid_breach(story: Story, deadline: datetime) -> Story:
    data = SlaBreach(
        case_id=story.case_id,
        case_version=1,
        stage=Stage.mediate,
        department=GRID,
        deadline=deadline,
    )
    story.events.append(Envelope(data, "/tests", deadline + timedelta(seconds=1)))
    return story


def dispute_stories(tag: str, at: datetime = START) -> list[Story]:
    d1 = _closed(_dispute(Story(f"{tag}-D1", at)), "grid", GRID)
    d2 = _dispute(Story(f"{tag}-D2", at))
    _closed(_up(_grid_breach(d2, at + HOUR / 2), "breach"), "community", COMMUNITY)
    d3 = _up(_dispute(Story(f"{tag}-D3", at)), "beyond_authority")
    return [d1, d2, d3]


NOV = datetime(2026, 11, 1, tzinfo=UTC)


def doors(tag: str) -> list[dict[str, Any]]:
    """The grid service's `grid_households` documents of the grid (pack-seeded: since None)."""

    def door(name: str, occupancy: str, until: datetime | None = None) -> dict[str, Any]:
        return {
            "_id": f"{tag}-{name}",
            "grid": GRID,
            "building": "1",
            "door": name,
            "changes": [{"at": None, "occupancy": occupancy}],
            "since": None,
            "until": until,
            "name": None,
            "rev": 1,
            "outbox": [],
        }

    return [
        door("h1", "rented"),
        door("h2", "owner_occupied"),
        door("h3", "vacant"),
        door("h4", "rented", until=datetime(2026, 11, 10, tzinfo=UTC)),
    ]


def visits(tag: str) -> list[dict[str, Any]]:
    """The grid service's `grid_visits` documents."""

    def visit(name: str, staff: str, at: datetime, door: str) -> dict[str, Any]:
        return {
            "_id": f"{tag}-{name}",
            "grid": GRID,
            "staff": staff,
            "at": at,
            "households": [f"{tag}-{door}"],
            "findings": [],
            "logged_at": at,
        }

    return [
        visit("v1", "GM-1", datetime(2026, 11, 5, 2, tzinfo=UTC), "h1"),
        visit("v2", "GM-1", datetime(2026, 10, 3, 2, tzinfo=UTC), "h2"),
        visit("v3", "GM-2", datetime(2026, 11, 20, 2, tzinfo=UTC), "h2"),
    ]


def spells() -> list[dict[str, Any]]:
    """The grid's staff register (`grid_heads` spells): a supervisor is no grid staff."""

    def spell(staff: str, role: str) -> dict[str, Any]:
        return {
            "id": f"pack:{staff}:{role}",
            "staff": staff,
            "name": staff,
            "role": role,
            "since": None,
            "until": None,
        }

    return [spell("GM-1", "grid_manager"), spell("GM-2", "doctor"), spell("sup-3", "supervisor")]


# By hand, November 2026:
#   GM-1 (grid staff; weights 50 / 30 / 20)
#     visit_coverage        h1 / h1 h2            (h3 vacant, h4 off the register; v2 October)
#     disputes_solved_here  D1 / D1 D2            (D3 not closed)
#     on_time_mediation     D1 D3 / D1 D2 D3
#     100 × (50 × 1/2 + 30 × 1/2 + 20 × 2/3) / 100 = 53.33, grade D
#   the grid's team (组团, weights 30 / 20 / 15 / 15 / 15 / 5), with people_stories' cases too:
#     visit_coverage        h1 h2 / h1 h2         everyone's visits
#     disputes_solved_here  1 / 2;  on_time_mediation 2 / 3
#     missed_reports        A E / A B E           (as 1 − rate: 1/3)
#     on_time_verification  A C / A C
#     self_handled          D G / B D G
#     100 × (30 + 20/2 + 15 × 2/3 + 15/3 + 15 + 5 × 2/3) / 100 = 73.33, grade C
GM1_SCORE = 53.33
TEAM_SCORE = 73.33
