"""自处置 at intake: `POST /self-handling`, a supervisor or grid manager's fix on the spot.

One request opens the case and ends it (`case.reported`, `case.self_handled`), never filed
or dispatched; idempotent under `Idempotency-Key` like a report (the case id derives from
the key). Refused: a class the pack does not let be fixed on the spot (422), a photo before
or after missing (422), a problem outside the person's grids (403).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from gridloop.auth import Principal, Role, require
from gridloop.errors import refusals
from schemas.events import Kind, Point
from schemas.limits import ClassCode, ComponentId, Description, MediaIds, Note
from services.intake import commands as do
from services.intake.edge import ACCEPTED, Deps, IdempotencyKey, asked, new_case_id, respond

router = APIRouter(tags=["self-handling"])
SelfHandler = Annotated[Principal, Depends(require(Role.supervisor, Role.grid_staff))]


class SelfHandlingIn(BaseModel):
    """Where and what (a `point` with `kind` and `class_code`, or a coded `component_id`),
    the uploads before and after the fix (`POST /media`), and what was done."""

    model_config = ConfigDict(extra="forbid")
    kind: Kind | None = None
    class_code: ClassCode | None = None
    component_id: ComponentId | None = None
    point: Point | None = None
    description: Description
    before: MediaIds = []
    after: MediaIds = []
    note: Note = None


@router.post("/self-handling", status_code=202, responses=ACCEPTED | refusals(400, 401, 403, 503))
async def self_handle(
    body: SelfHandlingIn, intake: Deps, who: SelfHandler, key: IdempotencyKey = None
) -> JSONResponse:
    """Self-handling (自处置): a minor problem fixed on the spot, with photos before and
    after; the case is closed as `self_handled` without filing or dispatch."""
    content = body.model_dump_json()
    command = do.SelfHandle(
        case_id=new_case_id("self-handling", who, key, content=content),
        who=who,
        description=body.description,
        before=tuple(body.before),
        after=tuple(body.after),
        kind=body.kind,
        class_code=body.class_code,
        component_id=body.component_id,
        point=body.point,
        note=body.note,
    )
    return respond(await intake.self_handle(command, asked("self-handling", who, key, content)))
