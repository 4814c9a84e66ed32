"""A tier office's desk for disputes (矛盾纠纷, docs/disputes.md): the disputes its tier
holds, each with its light and deadline, and the forms to escalate it (beyond our
authority), record the parties' confirmation (验收) and close it (confirmed, or why not);
the disputes the tier was overdue on and has not explained, with the explanation's form.

Like every page of the console, the desk and each action are calls of dispatch's own API
(`GET /disputes`, `POST /disputes/{id}/escalate|explanation|confirm|close`) with the
person's session token: dispatch decides (who holds the dispute, whether it is overdue,
whether the parties confirmed), and its refusal is shown beside the field it names.
`install` adds the routes to the console's app with the app's own page and session helpers.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response

from gridloop.access import Role
from gridloop.people import Session
from services.console.kit import ask, refused
from services.console.kit import checked as checked_form
from services.console.live import projected

Page = Callable[..., Response]
Sessions = Callable[[Request], Awaitable[Session]]
ACTIONS = ("escalate", "explanation", "confirm", "close")
SIDES = ("applicant", "respondent", "third_party")
FIELDS = ("reason", "explanation", "parties", "note", "unconfirmed_reason")
ROLES = (Role.tier_office, Role.grid_staff)


def action_body(action: str, form: Mapping[str, str], sides: list[str]) -> dict[str, Any]:
    """The form as the API's body: a blank text is left out (the API names what it needs)."""
    text = {k: v.strip() for k, v in form.items() if v.strip()}
    if action == "escalate":
        return {"reason": text.get("reason", "")}
    if action == "explanation":
        return {"explanation": text.get("explanation", "")}
    if action == "confirm":
        return {"parties": [{"side": s} for s in sides if s in SIDES]}
    return {k: text[k] for k in ("note", "unconfirmed_reason") if k in text}


def _dates(disputes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for dispute in disputes:
        for name in ("deadline", "reported_at", "closed_at"):
            at = dispute.get(name)
            dispute[name] = datetime.fromisoformat(at) if at else None
    return disputes


def install(app: FastAPI, page: Page, session: Sessions) -> None:
    """Add the tier office's dispute desk to the console `app`."""

    async def call(
        request: Request, found: Session, method: str, path: str, body: Any = None, key: str = ""
    ) -> httpx.Response | None:
        """Dispatch's answer (None: it did not answer)."""
        url = request.app.state.console.dispatch_url + path
        return await ask(found, url, method, body, key or None)

    async def desk(
        request: Request,
        found: Session,
        status: int = 200,
        errors: dict[str, dict[str, str]] | None = None,
    ) -> Response:
        listed = await call(request, found, "GET", "/disputes?limit=200")
        shown = listed.json() if listed is not None and listed.status_code == 200 else None
        disputes = _dates(shown["disputes"]) if shown is not None else []
        owed = set(shown["unexplained"]) if shown is not None else set()
        return page(
            request,
            "disputes.html",
            status if shown is not None else 503,
            me=found,
            held=[d for d in disputes if d["held"]],
            owed=[d for d in disputes if d["case_id"] in owed],
            closed=_dates(shown.get("closed", [])) if shown is not None else [],
            unavailable=shown is None,
            errors=errors or {},
            sides=SIDES,
            new_key=lambda: uuid.uuid4().hex,
            done=request.query_params.get("done"),
        )

    @app.get("/disputes")
    async def disputes(request: Request) -> Response:
        found = await session(request)
        if found.principal.role not in ROLES:
            return page(request, "elsewhere.html", 403, me=found)
        return await desk(request, found)

    @app.post("/disputes/{case_id}/{action}")
    async def act(
        request: Request,
        case_id: str,
        action: str,
        csrf: Annotated[str, Form(max_length=64)],
        key: Annotated[str, Form(max_length=64)],
        reason: Annotated[str, Form(max_length=2000)] = "",
        explanation: Annotated[str, Form(max_length=2000)] = "",
        note: Annotated[str, Form(max_length=2000)] = "",
        unconfirmed_reason: Annotated[str, Form(max_length=2000)] = "",
        sides: Annotated[list[str] | None, Form(max_length=3)] = None,
    ) -> Response:
        found = checked_form(await session(request), csrf)  # else SignIn: sign in again
        if action not in ACTIONS:
            return page(request, "elsewhere.html", 404, me=found)
        form = {"reason": reason, "explanation": explanation, "note": note}
        form["unconfirmed_reason"] = unconfirmed_reason
        body = action_body(action, form, sides or [])
        answer = await call(request, found, "POST", f"/disputes/{case_id}/{action}", body, key)
        if answer is None:
            return await desk(request, found, 503, {case_id: {"action": "unavailable"}})
        if answer.status_code != 202:
            return await desk(
                request, found, answer.status_code, {case_id: refused(answer, FIELDS)}
            )
        events = answer.json().get("events") or []
        await projected(request.app.state.console.reader, dict.fromkeys(events, case_id))
        return RedirectResponse(f"/disputes?done=disputes.{action}.done", status_code=303)
