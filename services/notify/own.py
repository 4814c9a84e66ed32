"""A department's own deliveries, read with its own credential (`GET /department/deliveries`):
what was sent to it, how many attempts each took, where each stands and when the next
attempt is due — so an integrator can see what its endpoint missed without asking the
command centre. The path does not name the department: the credential does.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from gridloop.auth import Principal, Role, require
from gridloop.errors import refusals
from gridloop.mongo import Document
from gridloop.refusal import not_found
from schemas.limits import CASE_ID, CASE_ID_MAX
from services.notify.store import PENDING, DeliveryStore

MAX_PAGE = 200
MAX_OFFSET = 10_000
Status = Literal["pending", "delivered", "dead"]

router = APIRouter(tags=["departments"])
Department = Annotated[Principal, Depends(require(Role.department))]


class Delivery(BaseModel):
    webhook_id: str  # the `webhook-id` header the message was sent with
    type: str  # the event's name, as in the message
    case_id: str
    status: Status
    attempts: int  # made so far (since the last replay)
    next_attempt_at: datetime | None  # pending: when the next attempt is due
    last_status: int | None  # the endpoint's last answer (null: none, or no answer)
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None


class Attempt(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    seconds: float
    outcome: str


class DeliveryRead(Delivery):
    """A delivery with the message as sent and every attempt."""

    message: dict[str, Any]
    attempt_log: list[Attempt]


class Deliveries(BaseModel):
    """A page of deliveries, newest first; `next`: the offset of the next page (None: this
    was the last)."""

    deliveries: list[Delivery]
    next: int | None


def _store(request: Request) -> DeliveryStore:
    store: DeliveryStore = request.app.state.deliveries
    return store


Store = Annotated[DeliveryStore, Depends(_store)]


@router.get("/department/deliveries", responses=refusals(401, 403))
async def department_deliveries(
    who: Department,
    store: Store,
    status: Annotated[list[Status] | None, Query(description="any of these")] = None,
    case_id: Annotated[str | None, Query(max_length=CASE_ID_MAX, pattern=CASE_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Deliveries:
    """The messages sent (or being sent) to the caller's department."""
    query: Document = {"department": who.department}
    if status:
        query["status"] = {"$in": list(status)}
    if case_id:
        query["case_id"] = case_id
    found = await store.page(query, offset, limit + 1)
    more = len(found) > limit
    return Deliveries(
        deliveries=[_delivery(d) for d in found[:limit]], next=offset + limit if more else None
    )


@router.get("/department/deliveries/{webhook_id}", responses=refusals(401, 403, 404))
async def department_delivery(webhook_id: str, who: Department, store: Store) -> DeliveryRead:
    """One of the department's deliveries: the message as sent, every attempt."""
    doc = await store.get(webhook_id)
    if doc is None or doc["department"] != who.department:
        raise not_found(("path", "webhook_id"), f"no delivery {webhook_id}")
    attempts = [Attempt.model_validate(a) for a in doc["attempt_log"]]
    message = json.loads(doc["body"])
    return DeliveryRead(**_delivery(doc).model_dump(), message=message, attempt_log=attempts)


def _delivery(doc: Document) -> Delivery:
    return Delivery(
        webhook_id=doc["_id"],
        type=doc["type"],
        case_id=doc["case_id"],
        status=doc["status"],
        attempts=doc["attempts"],
        next_attempt_at=doc["next_at"] if doc["status"] == PENDING else None,
        last_status=doc.get("last_status"),
        last_error=doc.get("last_error"),
        created_at=doc["created_at"],
        delivered_at=doc.get("delivered_at"),
        dead_at=doc.get("dead_at"),
    )
