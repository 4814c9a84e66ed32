"""The HTTP edge of refusals: one table maps each kind of domain refusal (`Why`) to a status
code, and every refusal is answered in one JSON shape,
`{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}` — the shape FastAPI already uses
for validation errors, so clients parse one format. A conflict also says where the case
stands (`"state"`, `"version"` beside `"detail"`), so a client that lost a race sees why."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from gridloop.refusal import Refused, Why

STATUS: dict[Why, int] = {
    Why.malformed: 400,
    Why.unauthenticated: 401,
    Why.forbidden: 403,
    Why.not_found: 404,
    Why.conflict: 409,
    Why.too_large: 413,
    Why.unsupported: 415,
    Why.invalid: 422,
    Why.unavailable: 503,
}
# What some refusals tell a client to do next (RFC 9110): authenticate, or come back later.
HEADERS: dict[Why, dict[str, str]] = {
    Why.unauthenticated: {"WWW-Authenticate": "Bearer"},
    Why.unavailable: {"Retry-After": "5"},
}


class Problem(BaseModel):
    """One thing wrong with a request: where (`loc`), what (`msg`) and its kind (`type`)."""

    loc: list[str | int]
    msg: str
    type: str


class Refusal(BaseModel):
    """The body of every refusal (4xx, 503): the shape of FastAPI's 422; a conflict adds
    the case's current `state` and `version`."""

    detail: list[Problem]
    state: str | None = None
    version: int | None = None


_REFUSED = {
    400: "Malformed request",
    401: "No token, or an unknown or revoked one",
    403: "The credential's role or subject may not do this",
    404: "No such case, department or record",
    409: "The case's state does not allow this (the body says where it stands)",
    413: "Too large",
    415: "Unsupported media type",
    422: "Invalid input, named by field",
    503: "The event log is unavailable: retry with the same Idempotency-Key",
}


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting the refusals a route may answer with."""
    return {s: {"model": Refusal, "description": _REFUSED[s]} for s in statuses}


def _body(loc: tuple[str, ...], msg: str, kind: str) -> dict[str, Any]:
    return {"detail": [{"loc": list(loc), "msg": msg, "type": kind}]}


def refusal_body(exc: Refused) -> dict[str, Any]:
    body = _body(exc.loc, exc.reason, exc.code)
    if exc.at is not None:
        body |= {"state": exc.at.state, "version": exc.at.version}
    return body


def refused_response(exc: Refused) -> JSONResponse:
    return JSONResponse(
        refusal_body(exc), status_code=STATUS[exc.why], headers=HEADERS.get(exc.why)
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(_: Request, exc: Refused) -> JSONResponse:
        return refused_response(exc)

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
