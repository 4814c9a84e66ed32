"""What intake's routes share at the HTTP edge: the service layer as a dependency, the
credentials each role needs, how a request is known again, and the shape of a 202."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gridloop.auth import PUBLIC, Principal, Role, require
from gridloop.commands import Answer, Asked
from gridloop.errors import refusals
from gridloop.refusal import invalid
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
ShiftLead = Annotated[Principal, Depends(require(Role.shift_lead))]
TaskReader = Annotated[Principal, Depends(require(Role.supervisor, Role.supervision_centre))]
FOLLOW_TOKEN = r"^[A-Za-z0-9_-]+$"  # as `follow_token` makes them: ASCII, for compare_digest
ANONYMOUS_KEY = 16  # characters at least in an anonymous caller's Idempotency-Key


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


def scope(name: str, who: Principal, content: str = "") -> str:
    """Idempotency keys are the caller's own: two callers' equal keys never meet.

    A credential names its holder. Anonymous callers hold none, so theirs would be one
    key space, where one caller's key returned another's answer and follow token. What an
    anonymous caller holds is its key, which must then be a secret (`ANONYMOUS_KEY`
    characters at least: a random UUID, not a counter two apps both start at 1), and its
    request: the key is scoped by the request's digest. A retry sends the same request
    under the same key and finds its answer; another request under an equal key is
    another caller's, never refused as a reuse (which would tell that the key is used)."""
    if who == PUBLIC:
        return f"{name}:{who.role.value}:{who.subject}:{_digest(content)}"
    return f"{name}:{who.role.value}:{who.subject}"


def _digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()[:32]


def _own(who: Principal, key: str | None) -> None:
    """Refuse an anonymous caller's key too short to be a secret of its own."""
    if who == PUBLIC and key is not None and len(key) < ANONYMOUS_KEY:
        raise invalid(
            ("header", "Idempotency-Key"),
            f"without a credential, an Idempotency-Key is a secret of your own: at least "
            f"{ANONYMOUS_KEY} random characters (a UUID)",
            "idempotency_key_too_short",
        )


def asked(name: str, who: Principal, key: str | None, content: str) -> Asked:
    _own(who, key)
    return Asked(scope(name, who, content), key, content)


def new_case_id(
    name: str, who: Principal, key: str | None, index: int | None = None, content: str = ""
) -> str:
    """A report's case id: derived from the caller's key in its scope (so a retry yields
    the very same case), else new."""
    if key is None:
        return str(uuid.uuid4())
    _own(who, key)
    suffix = "" if index is None else f":{index}"
    return str(uuid.uuid5(CASE_NAMESPACE, f"{scope(name, who, content)}:{key}{suffix}"))


def respond(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status)
