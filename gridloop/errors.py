"""Refusals with a status code, the field at fault and the reason, in one JSON shape:
`{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}` — the shape FastAPI already
uses for validation errors, so clients parse one format."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from gridloop.kafka import EventProducer
from gridloop.lifecycle import InvalidTransition
from schemas.envelope import Envelope


class Rejected(Exception):
    """A command refused by the domain; nothing was changed."""

    def __init__(
        self,
        status: int,
        loc: tuple[str, ...],
        reason: str,
        kind: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status, self.loc, self.reason, self.kind = status, loc, reason, kind
        self.headers = headers


# How long a request waits for Kafka's acknowledgement before it is refused. Without a
# bound, an unreachable broker holds every request for minutes (the client's request
# timeout, then its retries) and callers see no answer instead of a 503.
PUBLISH_TIMEOUT_SECONDS = 5.0


async def publish_or_refuse(producer: EventProducer, envelopes: Sequence[Envelope]) -> None:
    """Publish, or refuse the request with 503: never acknowledge what Kafka has not.

    A refused request's events may still reach the log later (they were sent, only not
    acknowledged in time): a retry with the same `Idempotency-Key` derives the same events,
    which consumers drop as duplicates."""
    # Shielded: giving up waiting must not cancel the sends aiokafka already holds.
    sending = asyncio.ensure_future(producer.publish(envelopes))
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            await asyncio.shield(sending)
    except (KafkaError, TimeoutError) as exc:
        sending.add_done_callback(_retrieve)
        raise Rejected(
            503,
            ("kafka",),
            f"the event log is unavailable ({type(exc).__name__}); "
            "not acknowledged: retry later with the same Idempotency-Key",
            "unavailable",
            {"Retry-After": "5"},
        ) from exc


def _retrieve(task: asyncio.Future[None]) -> None:
    """Collect the late outcome of a publish the request stopped waiting for."""
    if not task.cancelled():
        task.exception()


class Problem(BaseModel):
    """One thing wrong with a request: where (`loc`), what (`msg`) and its kind (`type`)."""

    loc: list[str | int]
    msg: str
    type: str


class Refusal(BaseModel):
    """The body of every refusal (4xx, 503): the shape of FastAPI's 422."""

    detail: list[Problem]


_REFUSED = {
    400: "Malformed request",
    401: "No token, or an unknown or revoked one",
    403: "The credential's role or subject may not do this",
    404: "No such case, department or record",
    409: "The case's state does not allow this",
    413: "Too large",
    415: "Unsupported media type",
    422: "Invalid input, named by field",
    503: "The event log is unavailable: retry with the same Idempotency-Key",
}


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting the refusals a route may answer with."""
    return {s: {"model": Refusal, "description": _REFUSED[s]} for s in statuses}


def _body(loc: tuple[str, ...], msg: str, kind: str) -> dict[str, list[dict[str, object]]]:
    return {"detail": [{"loc": list(loc), "msg": msg, "type": kind}]}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Rejected)
    async def rejected(_: Request, exc: Rejected) -> JSONResponse:
        body = _body(exc.loc, exc.reason, exc.kind)
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(InvalidTransition)
    async def invalid(_: Request, exc: InvalidTransition) -> JSONResponse:
        return JSONResponse(_body(("state",), str(exc), "invalid_transition"), status_code=409)

    @app.exception_handler(RequestValidationError)
    async def unprocessable(_: Request, exc: RequestValidationError) -> Response:
        # FastAPI's 422, ASCII-escaped: the input it echoes may hold a lone surrogate,
        # which no UTF-8 encoder takes, and the 422 would become a 500.
        body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
        return Response(body, status_code=422, media_type="application/json")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        # FastAPI's own refusals (a body it cannot decode: 400; an unknown path: 404; a
        # method not allowed: 405) in the one shape, not as a bare string.
        loc = ("body",) if exc.status_code == 400 else ("request",)
        kind = "malformed_body" if exc.status_code == 400 else "http_error"
        body = _body(loc, str(exc.detail), kind)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
