"""The supervisors' on-site check tasks (核查): handled cases awaiting their check, each
with when it is due. `GET /tasks/check` beside `GET /tasks/verification`, in its style: a
supervisor's are those of the grids they patrol; the supervision centre sees all.

The due time is the pack's check limit from the handling (`SlaPolicy.deadline`, as the SLA
engine opens the check clock), so it is known before the engine warns; the engine's light
(`sla.check`: yellow on a warning, red on a breach) is given beside it when there is one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder

from gridloop.access import Role
from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack
from gridloop.errors import refusals
from schemas.events import Stage
from services.intake.edge import Deps, TaskReader

router = APIRouter()
HANDLED = "case.handled"
FAR = datetime.max.replace(tzinfo=UTC)


def handled_at(record: CaseRecord) -> datetime | None:
    """When the case was last reported handled (the check's clock starts there)."""
    for entry in reversed(record.timeline):
        if entry.type == HANDLED:
            return entry.at
    return None


def check_task(pack: CityPack, record: CaseRecord) -> dict[str, Any]:
    """A check task as the handheld lists it: the case, who handled it when, and when the
    check is due (None when the pack does not time the check for the case's class)."""
    since = handled_at(record)
    due = None
    if since is not None:
        reckoned = pack.sla.deadline(
            Stage.check, record.kind, record.class_code, record.urgency, since, record.channel
        )
        due = reckoned.due if reckoned is not None else None
    clock = record.sla.get(Stage.check.value)
    return {
        "case_id": record.case_id,
        "case_number": record.case_number,
        "kind": record.kind,
        "class_code": record.class_code,
        "grid_code": record.grid_code,
        "point": record.point,
        "description": record.description,
        "department": record.department,
        "handled_at": since,
        "due": due,
        "sla_light": clock.light if clock is not None else None,  # the engine's, if it spoke
        "state": record.state,
        "version": record.version,
    }


@router.get("/tasks/check", responses=refusals(401, 403))
async def check_tasks(
    intake: Deps,
    who: TaskReader,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Handled cases awaiting the on-site check (核查), soonest due first: a supervisor's
    are those of the grids they patrol; the supervision centre sees all."""
    grids = intake.pack.supervised_by(who.subject) if who.role is Role.supervisor else None
    tasks = [check_task(intake.pack, t) for t in await intake.cases.awaiting_check(grids, limit)]
    tasks.sort(key=lambda t: t["due"] or FAR)  # untimed checks last
    encoded: list[dict[str, Any]] = jsonable_encoder(tasks)
    return encoded
