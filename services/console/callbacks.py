"""The hotline's callback desk (回访): the closed cases whose reporter left a contact, each
with whom to call; a call that reached nobody, or the resident's answers (contacted by the
unit? solved? satisfied / basically satisfied / dissatisfied?).

Like every page of the console, the queue and each action are calls of intake's own API
(`GET /callbacks`, `POST /cases/{id}/callback[/unreached]`) with the person's session
token: intake decides (the pack's tries, the feedback policy that may reopen the case), and
its refusal is shown beside the field it names. `install` adds the routes to the console's
app with the app's own page and session helpers.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response

from gridloop.access import Role
from gridloop.people import Session
from services.console.kit import ask, refused
from services.console.kit import checked as checked_form

Page = Callable[..., Response]
Sessions = Callable[[Request], Awaitable[Session]]
FIELDS = ("contacted", "solved", "satisfaction", "comment")
SATISFACTION = ("satisfied", "basically_satisfied", "dissatisfied")


def answer_body(contacted: str, solved: str, satisfaction: str, comment: str) -> dict[str, Any]:
    """The form as the API's body: a choice left blank is left out (the API names it)."""
    body: dict[str, Any] = {}
    if contacted in ("yes", "no"):
        body["contacted"] = contacted == "yes"
    if solved in ("yes", "no"):
        body["solved"] = solved == "yes"
    if satisfaction:
        body["satisfaction"] = satisfaction
    if comment.strip():
        body["comment"] = comment.strip()
    return body


def install(app: FastAPI, page: Page, session: Sessions) -> None:
    """Add the hotline's callback desk to the console `app`."""

    async def call(
        request: Request,
        found: Session,
        method: str,
        path: str,
        body: Any = None,
        key: str | None = None,
    ) -> httpx.Response | None:
        """Intake's answer (None: it did not answer)."""
        return await ask(found, request.app.state.console.intake_url + path, method, body, key)

    async def desk(
        request: Request,
        found: Session,
        status: int = 200,
        errors: dict[str, dict[str, str]] | None = None,
        values: dict[str, dict[str, str]] | None = None,
    ) -> Response:
        listed = await call(request, found, "GET", "/callbacks?limit=200")
        owed = listed.json() if listed is not None and listed.status_code == 200 else None
        for task in owed or []:
            closed = task.get("closed_at")
            task["closed_at"] = datetime.fromisoformat(closed) if closed else None
        return page(
            request,
            "callbacks.html",
            status if owed is not None else 503,
            me=found,
            owed=owed or [],
            unavailable=owed is None,
            errors=errors or {},
            values=values or {},
            choices=SATISFACTION,
            departments=request.app.state.console.departments,
            new_key=lambda: uuid.uuid4().hex,
            done=request.query_params.get("done"),
        )

    async def checked(request: Request, csrf: str) -> Session:
        return checked_form(await session(request), csrf)  # else SignIn: sign in again

    @app.get("/callbacks")
    async def callbacks(request: Request) -> Response:
        found = await session(request)
        if found.principal.role is not Role.hotline:
            return page(request, "elsewhere.html", 403, me=found)
        return await desk(request, found)

    @app.post("/callbacks/{case_id}/unreached")
    async def unreached(
        request: Request,
        case_id: str,
        csrf: Annotated[str, Form(max_length=64)],
        key: Annotated[str, Form(max_length=64)],
    ) -> Response:
        found = await checked(request, csrf)
        path = f"/cases/{case_id}/callback/unreached"
        answer = await call(request, found, "POST", path, {}, key)
        return await after(request, found, case_id, answer, "callback.unreached", {})

    @app.post("/callbacks/{case_id}/answer")
    async def answered(
        request: Request,
        case_id: str,
        csrf: Annotated[str, Form(max_length=64)],
        key: Annotated[str, Form(max_length=64)],
        contacted: Annotated[str, Form(max_length=8)] = "",
        solved: Annotated[str, Form(max_length=8)] = "",
        satisfaction: Annotated[str, Form(max_length=32)] = "",
        comment: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        found = await checked(request, csrf)
        body = answer_body(contacted, solved, satisfaction, comment)
        answer = await call(request, found, "POST", f"/cases/{case_id}/callback", body, key)
        held = {"contacted": contacted, "solved": solved, "satisfaction": satisfaction}
        held["comment"] = comment
        return await after(request, found, case_id, answer, "callback.answered", held)

    async def after(
        request: Request,
        found: Session,
        case_id: str,
        answer: httpx.Response | None,
        done: str,
        held: dict[str, str],
    ) -> Response:
        """Back to the desk: after a 202 what was done, else the refusal beside its field
        and the form as the person left it."""
        if answer is None:
            wrong = {case_id: {"action": "unavailable"}}
            return await desk(request, found, 503, wrong, {case_id: held})
        if answer.status_code == 202:
            return RedirectResponse(f"/callbacks?done={done}", status_code=303)
        wrong = {case_id: refused(answer, FIELDS)}
        return await desk(request, found, answer.status_code, wrong, {case_id: held})
