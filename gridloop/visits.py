"""The visit log's read side shared by all services: what the grid staff's visits (走访) found,
counted by type over a period, never a text or a door.

The grid service is the only writer of `grid_visits` (services/grid/visit_store.py); another
service (evaluation's monthly report: the demand analysis, 民情分析) reads it here, as every
service reads the case projection through `gridloop.cases.reader`.
"""

from __future__ import annotations

from datetime import datetime

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
