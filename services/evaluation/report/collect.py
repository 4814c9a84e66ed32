"""Reading the report's inputs: the month's cases from the `cases` projections, the
month's league tables from the scores."""

from __future__ import annotations

from typing import Protocol

from pymongo.asynchronous.database import AsyncDatabase

from gridloop.lifecycle import OPEN_STATES
from gridloop.mongo import Document
from gridloop.scoring import Level, Score
from gridloop.visits import FINDING_NAMES, findings_by_type
from services.evaluation.report.demand import DISPUTE, VisitFinding
from services.evaluation.report.model import Case, Period

# Only what the report counts: never the reporter, the description, media or address.
FIELDS = {
    name: 1
    for name in (
        "case_number",
        "state",
        "kind",
        "class_code",
        "grid_code",
        "channel",
        "point",
        "component_id",
        "reported_at",
        "department",
        "tier",  # a dispute's tier office (矛盾纠纷), docs/disputes.md
        "tier_office",
        "deadline",
        "parked_at",
        "closed_at",
        "sla",  # the stages' lights, deadlines and escalation tiers
        "timeline.type",
        "timeline.at",
    )
}


class Scores(Protocol):
    """What the report needs of the scores (services/evaluation/store.py `ScoreStore`)."""

    async def league(self, level: Level, period: str) -> list[Score]: ...


class NoScores:
    """For a database the scores processor has not run on: empty league tables."""

    async def league(self, level: Level, period: str) -> list[Score]:
        return []


async def month_cases(db: AsyncDatabase[Document], period: Period) -> list[Case]:
    """Cases reported in the month (documents still being written have no state: left out)."""
    query = {
        "reported_at": {"$gte": period.start, "$lt": period.end},
        "state": {"$exists": True},
    }
    return [doc async for doc in db["cases"].find(query, FIELDS).sort("_id", 1)]


async def open_disputes(db: AsyncDatabase[Document]) -> list[Case]:
    """Every dispute (矛盾纠纷, case kind `dispute`) still open, whatever month it came in:
    the demand analysis says where the unresolved ones sit (none before the kind exists)."""
    query = {"kind": DISPUTE, "state": {"$in": sorted(s.value for s in OPEN_STATES)}}
    return [doc async for doc in db["cases"].find(query, FIELDS).sort("_id", 1)]


async def visit_findings(db: AsyncDatabase[Document], period: Period) -> list[VisitFinding]:
    """What the grid staff's visits (走访) found in `period`, by type, with the month
    before's count (`gridloop.visits`: the grid service's visit log; None for a month
    before without a finding: no change is shown against nothing recorded)."""
    this = await findings_by_type(db, period.start, period.end)
    before = period.previous()
    last = await findings_by_type(db, before.start, before.end)
    return [
        VisitFinding(
            code,
            FINDING_NAMES.get(code, code),
            this.get(code, 0),
            last.get(code, 0) if last else None,
        )
        for code in sorted(this.keys() | last.keys(), key=lambda c: (-this.get(c, 0), c))
    ]


async def last_month(
    db: AsyncDatabase[Document], scores: Scores, period: Period
) -> tuple[list[Case], list[Score]]:
    """The month before's cases and streets' scores, for the comparison."""
    before = period.previous()
    return await month_cases(db, before), await scores.league(Level.street, before.label)


async def leagues(scores: Scores, period: Period) -> tuple[list[Score], list[Score]]:
    """The month's scores of departments and of streets."""
    return (
        await scores.league(Level.department, period.label),
        await scores.league(Level.street, period.label),
    )
