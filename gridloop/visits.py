"""The visit log's read side shared by all services: what the grid staff's visits (走访) found,
counted by type over a period, never a text or a door.

The grid service is the only writer of `grid_visits` (services/grid/visit_store.py); another
service (evaluation's monthly report: the demand analysis, 民情分析) reads it here, as every
service reads the case projection through `gridloop.cases.reader`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from gridloop.mongo import Document

VISITS = "grid_visits"
# The finding types (services/grid/visiting.py `FindingType`) as a report names them.
FINDING_NAMES = {
    "dispute": "矛盾纠纷 dispute",
    "need": "诉求 need",
    "suggestion": "建议 suggestion",
    "safety_hazard": "安全隐患 safety hazard",
    "fire_hazard": "消防隐患 fire hazard",
    "sanitation": "环境卫生 sanitation",
}


async def findings_by_type(
    db: AsyncDatabase[Document], start: datetime, end: datetime, grids: list[str] | None = None
) -> dict[str, int]:
    """How many findings of each type (`dispute`, `need`, …) the visits made in [start,
    end) recorded, in `grids` (every grid when None)."""
    match: Document = {"at": {"$gte": start, "$lt": end}}
    if grids is not None:
        match["grid"] = {"$in": grids}
    found = db[VISITS].find(match, {"findings.type": 1, "_id": 0})
    counts: dict[str, int] = {}
    async for doc in found:
        for finding in doc.get("findings") or ():
            counts[finding["type"]] = counts.get(finding["type"], 0) + 1
    return counts


# --- coverage for evaluation's people scores (issue 17 item 7) -------------------------------

HOUSEHOLDS = "grid_households"
HEADS = "grid_heads"  # the staff register: one document a grid, its `spells`
_NOT_STAFF = "supervisor"  # a supervisor patrols and verifies; visits are the grid staff's


@dataclass(frozen=True)
class Covered:
    """走访覆盖率 over some grids and a period: the households to visit (on the register at
    the period's end, not vacant) and those of them visited, by id (sorted)."""

    due: tuple[str, ...]
    visited: tuple[str, ...]


def _aware(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _to_visit(door: Document, at: datetime) -> bool:
    """On the register at `at` and not vacant then (as services/grid/coverage.py counts)."""
    since, until = _aware(door.get("since")), _aware(door.get("until"))
    if (since is not None and since > at) or (until is not None and until <= at):
        return False
    used = [c["occupancy"] for c in door.get("changes") or () if (_aware(c["at"]) or at) <= at]
    return bool(used) and used[-1] != "vacant"


def covered(
    doors: Iterable[Document],
    visits: Iterable[Document],
    start: datetime,
    end: datetime,
    staff: str | None = None,
) -> Covered:
    """Households visited ÷ households: the doors of `doors` to visit at the end of [start,
    end), and those a visit made in it named (by `staff` only, when given). Pure: the
    grid service's documents in, ids out; the register as it stands at the period's end,
    so the same documents give the same answer whenever asked."""
    at = end - timedelta(microseconds=1)
    due = sorted(d["_id"] for d in doors if _to_visit(d, at))
    seen = {
        door
        for v in visits
        if start <= (_aware(v["at"]) or start) < end and staff in (None, v.get("staff"))
        for door in v.get("households") or ()
    }
    return Covered(tuple(due), tuple(d for d in due if d in seen))


async def coverage_of(
    db: AsyncDatabase[Document],
    grids: Iterable[str],
    start: datetime,
    end: datetime,
    staff: str | None = None,
) -> Covered:
    """`covered` of the grid service's register and visit log of `grids`."""
    inside = {"$in": sorted(set(grids))}
    doors = [d async for d in db[HOUSEHOLDS].find({"grid": inside}, {"outbox": 0})]
    match: Document = {"grid": inside, "at": {"$gte": start, "$lt": end}}
    if staff is not None:
        match["staff"] = staff
    visits = [v async for v in db[VISITS].find(match, {"at": 1, "staff": 1, "households": 1})]
    return covered(doors, visits, start, end, staff)


# Zhoushan's service team (组团式服务): the register's roles besides the grid manager and the
# supervisor (gridloop/citypack/staff.py `StaffRole`).
NOT_TEAM = frozenset({"grid_manager", _NOT_STAFF})


def worked(
    spells: Iterable[Document], start: datetime, end: datetime, team: bool = False
) -> list[str]:
    """The staff ids of the spells (the grid's register) that overlapped [start, end) in a
    role of the grid staff (a grid manager or team member; not a supervisor), or only in a
    role of the grid's service team (`team`)."""
    skip = NOT_TEAM if team else {_NOT_STAFF}
    return sorted(
        {
            s["staff"]
            for s in spells
            if s["role"] not in skip
            and (s.get("since") is None or _aware(s["since"]) < end)  # type: ignore[operator]
            and (s.get("until") is None or _aware(s["until"]) > start)  # type: ignore[operator]
        }
    )


async def grid_people(
    db: AsyncDatabase[Document], start: datetime, end: datetime
) -> tuple[dict[str, list[str]], set[str]]:
    """Each grid staff member who worked some grid in [start, end), with their grids
    (sorted); and the grids that had a service team (组团) then."""
    people: dict[str, list[str]] = {}
    teams: set[str] = set()
    async for head in db[HEADS].find({}, {"spells": 1}):
        spells = head.get("spells") or ()
        for staff in worked(spells, start, end):
            people.setdefault(staff, []).append(head["_id"])
        if worked(spells, start, end, team=True):
            teams.add(head["_id"])
    return {staff: sorted(grids) for staff, grids in sorted(people.items())}, teams
