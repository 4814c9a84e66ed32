"""A department's own cases, read with its own credential (`GET /department/cases`): what a
department with no IT system of its own, or an integrator syncing one, needs to see its
work — each case's state, version, deadline and light, whether it leads or assists, and
whether it acknowledged since the last dispatch. The path does not name the department: the
credential does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from gridloop.auth import Principal, Role, require
from gridloop.cases.lights import Light, light
from gridloop.cases.reader import CaseReader
from gridloop.cases.record import CaseRecord
from gridloop.errors import refusals
from gridloop.lifecycle import State
from schemas import clock

# A department's cases are those it was sent: dispatched, parked, handled, closed.
ITS_STATES = (State.dispatched, State.parked, State.handled, State.closed)
MAX_PAGE = 200
MAX_OFFSET = 10_000

router = APIRouter(tags=["departments"])


class DepartmentCase(BaseModel):
    case_id: str
    case_number: str | None
    state: str
    version: int
    role: Literal["lead", "assisting"]
    acknowledged: bool
    kind: str | None  # event or component
    class_code: str | None
    grid_code: str | None
    deadline: datetime | None
    light: Light


class DepartmentCases(BaseModel):
    """A page of the department's cases, soonest deadline first; `next`: the offset of the
    next page (None: this was the last)."""

    cases: list[DepartmentCase]
    next: int | None


def _reader(request: Request) -> CaseReader:
    reader: CaseReader = request.app.state.reader
    return reader


@router.get("/department/cases", responses=refusals(401, 403))
async def department_cases(
    who: Annotated[Principal, Depends(require(Role.department))],
    reader: Annotated[CaseReader, Depends(_reader)],
    state: Annotated[list[State] | None, Query(description="any of these states")] = None,
    light_: Annotated[Light | None, Query(alias="light")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> DepartmentCases:
    """The cases sent to the caller's department (lead or assisting)."""
    department = who.department
    assert department is not None  # the role `department` always names one
    states = tuple(s for s in state if s in ITS_STATES) if state else ITS_STATES
    found = await reader.of_department(department, states, offset + limit + 1)
    now = clock.now()
    shown = [_shown(c, department, now) for c in found]
    if light_ is not None:
        shown = [c for c in shown if c.light is light_]
    page = shown[offset : offset + limit]
    more = len(shown) > offset + limit
    return DepartmentCases(cases=page, next=offset + limit if more else None)


def _shown(case: CaseRecord, department: str, now: datetime) -> DepartmentCase:
    return DepartmentCase(
        case_id=case.case_id,
        case_number=case.case_number,
        state=case.state.value,
        version=case.version,
        role="lead" if case.department == department else "assisting",
        acknowledged=case.acknowledged_by(department),
        kind=case.kind,
        class_code=case.class_code,
        grid_code=case.grid_code,
        deadline=case.deadline,
        light=light(case, now),
    )
