"""Dispatch decisions. Pure: the city pack and facts in, events out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from gridloop.citypack import CityPack
from gridloop.errors import Rejected
from gridloop.lifecycle import next_state
from schemas.events import Actor, CaseDispatched, CaseHandled, Kind, Role
from services.projections.core import CaseView

COMMAND_CENTRE = Actor(role=Role.command_centre, id="auto-dispatch")


class HandledIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    handler_id: Annotated[str, Field(min_length=1, max_length=64)]
    note: Annotated[str | None, Field(max_length=2000)] = None


def route(pack: CityPack, kind: Kind, class_code: str, grid_code: str) -> tuple[str, str]:
    """The owner department and the rule that chose it: the class's default owner, else
    the grid's street office as owner of last resort (属地兜底)."""
    cls = pack.classes.get((kind, class_code))
    if cls is not None and cls.owner in pack.departments:
        return cls.owner, f"default owner of {kind} class {class_code}"
    street = pack.streets[grid_code[6:9]]
    return street.office, f"street office of grid {grid_code} (owner of last resort)"


def decide_dispatch(
    pack: CityPack,
    case_id: str,
    version: int,
    kind: Kind,
    class_code: str,
    grid_code: str,
    since: datetime,
) -> CaseDispatched:
    """Dispatch with a deadline `handle_limit` after `since`, the time of the event that
    made the case dispatchable, so re-deriving the event gives the same deadline."""
    department, rule = route(pack, kind, class_code, grid_code)
    limit = pack.classes[(kind, class_code)].handle_limit
    return CaseDispatched(
        case_id=case_id,
        version=version + 1,
        actor=COMMAND_CENTRE,
        department=department,
        deadline=since + limit,
        rule=rule,
    )


def decide_handled(case: CaseView, department: str, answer: HandledIn) -> CaseHandled:
    """A department reports the case handled (处理反馈); only the department it was
    dispatched to may."""
    if case.department != department:
        raise Rejected(
            403,
            ("path", "department"),
            f"case {case.case_id} is not dispatched to {department}",
            "forbidden",
        )
    next_state(case.state, "handled")
    return CaseHandled(
        case_id=case.case_id,
        version=case.version + 1,
        actor=Actor(role=Role.department, id=f"{department}/{answer.handler_id}"),
        department=department,
        note=answer.note,
    )
