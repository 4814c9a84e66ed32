"""What intake's routes share at the HTTP edge: the service layer as a dependency, the
credentials each role needs, how a request is known again, and the shape of a 202."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gridloop.auth import Principal, Role, require
from gridloop.commands import Answer, Asked
from gridloop.errors import refusals
from services.intake.handlers import Intake

CASE_NAMESPACE = uuid.UUID("0d7b3a4e-2f7e-4bd4-8f53-9d61d1f0c3a1")
STAFF = (
    Role.supervision_centre,
    Role.command_centre,
    Role.supervisor,
    Role.hotline,
    Role.department,
    Role.admin,
)


async def _intake(request: Request) -> Intake:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a hop per request.
    intake: Intake = request.app.state.intake
    return intake


Deps = Annotated[Intake, Depends(_intake)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
Anyone = Annotated[Principal, Depends(require(Role.public))]
Staff = Annotated[Principal, Depends(require(*STAFF))]
Supervisor = Annotated[Principal, Depends(require(Role.supervisor))]
Centre = Annotated[Principal, Depends(require(Role.supervision_centre))]
TaskReader = Annotated[Principal, Depends(require(Role.supervisor, Role.supervision_centre))]
FOLLOW_TOKEN = r"^[A-Za-z0-9_-]+$"  # as `follow_token` makes them: ASCII, for compare_digest


class Accepted(BaseModel):
    """A command's 202: the case's state and version after it, and the events published."""

    case_id: str
    state: str
    version: int
    type: str  # the last event's type
    events: list[str]
    case_number: str | None = None  # when the command filed the case
    merged_into: str | None = None  # when the report was a duplicate
    follow_token: str | None = None  # a citizen's report: to follow it


# What each kind of route answers, and may refuse with besides 422 (FastAPI documents it).
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": Accepted, "description": "Published: Kafka acknowledged the events"}
}
ACT = ACCEPTED | refusals(400, 401, 403, 404, 409, 503)
READ = refusals(401, 403, 404)


def scope(name: str, who: Principal) -> str:
    """Idempotency keys are the caller's own: two callers' equal keys never meet."""
    return f"{name}:{who.role.value}:{who.subject}"


def asked(name: str, who: Principal, key: str | None, content: str) -> Asked:
    return Asked(scope(name, who), key, content)


def new_case_id(name: str, who: Principal, key: str | None, index: int | None = None) -> str:
    """A report's case id: derived from the caller's key (so a retry yields the very same
    case), else new."""
    if key is None:
        return str(uuid.uuid4())
    suffix = "" if index is None else f":{index}"
    return str(uuid.uuid5(CASE_NAMESPACE, f"{scope(name, who)}:{key}{suffix}"))


def respond(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status)
