"""The shift lead's (值班长) desk: approvals waiting (a department's extension, parking,
return and resumption; an intake operator's void), each with the deadline it would move
and its light; 督办 — urge the department holding a case, and
see its reply or its miss; and the department's reply to an urge.

Like every page of the console, an action is a call of dispatch's (a void: intake's) own
API with the person's session token (`/cases/{id}/{kind}/approve|deny`, `/cases/{id}/urge`,
`/department/cases/{id}/urge-reply`): the API decides, and its refusal is shown
beside the field it names. `install` adds the routes to the console's app, with the app's
own page and session helpers (so this module imports nothing of `app.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from gridloop.access import Role
from gridloop.cases.lights import Light, light, urge_light
from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack
from gridloop.people import Session
from schemas import clock
from services.console.core import ROWS
from services.console.kit import Rows, ask, checked
from services.console.live import projected
from services.console.screens import refusal

Page = Callable[..., Response]
Sessions = Callable[[Request], Awaitable[Session]]
KINDS = ("extension", "parking", "return", "resume", "void")
VERBS = ("approve", "deny")


@dataclass(frozen=True)
class Waiting:
    """An approval waiting: the case, its light, and the deadline approving it moves
    (an extension's new due time; parking stops the clock; a return ends the department's;
    a resumption moves it by the time the case stood still)."""

    case: CaseRecord
    light: Light
    moves_to: datetime | None


def waiting(cases: list[CaseRecord], now: datetime, pack: CityPack | None) -> list[Waiting]:
    """The approvals the shift lead answers, as read (by the case's deadline)."""
    found = []
    for case in cases:
        pending = case.pending_request
        if pending is None:
            continue
        moves_to = pending.deadline if pending.kind == "extension" else None
        if pending.kind == "resume" and pack is not None:
            moves_to = resumed_by(pack, case, now)
        found.append(Waiting(case, light(case, now), moves_to))
    return found


def resumed_by(pack: CityPack, case: CaseRecord, now: datetime) -> datetime | None:
    """The deadline a parked case would have if it resumed `now` (as dispatch reckons it:
    moved by the time it stood still, on the class's clock)."""
    if case.deadline is None or case.parked_at is None:
        return None
    moved = pack.sla.resumed(
        case.kind, case.class_code, case.urgency, case.deadline, case.parked_at, now
    )
    return moved.due


def _refusal(answer: httpx.Response, fields: tuple[str, ...]) -> dict[str, str]:
    """The API's refusal (`screens.refusal`) beside the form's `fields`, else the action."""
    return {(k if k in fields else "action"): v for k, v in refusal(answer).items()}


def install(app: FastAPI, templates: Jinja2Templates, page: Page, session: Sessions) -> None:
    """Add the shift lead's desk and the urge pages to the console `app`."""
    templates.env.globals["urge_light"] = lambda urge: urge_light(urge, clock.now())

    async def post(
        request: Request,
        found: Session,
        path: str,
        body: dict[str, Any],
        key: str,
        service: str = "dispatch",
    ) -> httpx.Response | None:
        """The answer of dispatch (or intake: a void) to the person's action (None: it did
        not answer); after a 202, once the projection shows it, so the next page shows
        what they did."""
        console = request.app.state.console
        base = console.intake_url if service == "intake" else console.dispatch_url
        answer = await ask(found, base + path, body=body, key=key)
        if answer is not None and answer.status_code == 202:
            events = answer.json().get("events") or []
            case_id = path.split("/cases/")[1].split("/")[0]
            await projected(console.reader, dict.fromkeys(events, case_id))
        return answer

    async def desk(
        request: Request,
        found: Session,
        status: int = 200,
        errors: dict[str, dict[str, str]] | None = None,
        rows: int = ROWS,
    ) -> Response:
        reader = request.app.state.console.reader
        now = clock.now()
        pack = request.app.state.console.pack
        requests = waiting(await reader.with_pending_request(now, limit=rows), now, pack)
        urged = await reader.urged(limit=rows)
        overdue = await reader.overdue(now, limit=rows)
        lights = {c.case_id: light(c, now) for c in [*urged, *overdue]}
        return page(
            request,
            "approvals.html",
            status,
            me=found,
            requests=requests,
            urged=urged,
            overdue=overdue,
            lights=lights,
            errors=errors or {},
            done=request.query_params.get("done"),
            page_rows=rows,
        )

    @app.get("/approvals")
    async def approvals(request: Request, rows: Rows = ROWS) -> Response:
        found = await session(request)
        if found.principal.role is not Role.shift_lead:
            return page(request, "elsewhere.html", 403, me=found)
        return await desk(request, found, rows=rows)

    @app.post("/approvals/{case_id}/{kind}/{verb}")
    async def decide(
        request: Request,
        case_id: str,
        kind: str,
        verb: str,
        csrf: Annotated[str, Form(max_length=64)],
        key: Annotated[str, Form(max_length=64)],
        reason: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        found = await _checked(request, session, csrf)
        if kind not in KINDS or verb not in VERBS:
            return page(request, "elsewhere.html", 404, me=found)
        # Intake decides a void (it owns the report; the person is the signed-in lead),
        # dispatch the department's requests (naming the person who decides).
        service = "intake" if kind == "void" else "dispatch"
        body: dict[str, Any] = {}
        if service == "dispatch":
            body["dispatcher"] = found.principal.person or found.principal.subject
        if reason or verb == "deny":
            body["reason"] = reason  # a denial's blank reason is refused beside its field
        path = f"/cases/{case_id}/{kind}/{verb}"
        answer = await post(request, found, path, body, key, service)
        if answer is None:
            return await desk(request, found, 503, {case_id: {"action": "unavailable"}})
        if answer.status_code == 202:
            return RedirectResponse(f"/approvals?done={verb}", status_code=303)
        refused = _refusal(answer, ("reason",))
        return await desk(request, found, answer.status_code, {case_id: refused})

    async def urge_page(
        request: Request,
        found: Session,
        case_id: str,
        status: int = 200,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        case = await request.app.state.console.reader.record(case_id)
        department = found.principal.department
        if case is None or (department is not None and not case.held_by(department)):
            return page(request, "missing.html", 404, me=found, case_id=case_id)
        return page(
            request,
            "urge.html",
            status,
            me=found,
            case=case,
            light=light(case, clock.now()),
            key=uuid.uuid4().hex,
            errors=errors or {},
            values=values or {},
            done=request.query_params.get("done"),
        )

    @app.get("/urges/{case_id}")
    async def urges(request: Request, case_id: str) -> Response:
        """The case's 督办: the urge form (the shift lead's), every urge and its reply."""
        return await urge_page(request, await session(request), case_id)

    @app.post("/urges/{case_id}")
    async def urge(
        request: Request,
        case_id: str,
        csrf: Annotated[str, Form(max_length=64)],
        key: Annotated[str, Form(max_length=64)],
        message: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        found = await _checked(request, session, csrf)
        if found.principal.role is not Role.shift_lead:
            return await urge_page(request, found, case_id, 403, {"action": "forbidden"})
        body = {"lead": found.principal.person or found.principal.subject, "message": message}
        answer = await post(request, found, f"/cases/{case_id}/urge", body, key)
        if answer is None:
            return await urge_page(request, found, case_id, 503, {"action": "unavailable"})
        if answer.status_code == 202:
            return RedirectResponse(f"/urges/{case_id}?done=urge", status_code=303)
        refused = _refusal(answer, ("message",))
        values = {"message": message}
        return await urge_page(request, found, case_id, answer.status_code, refused, values)

    @app.post("/urges/{case_id}/reply")
    async def reply(
        request: Request,
        case_id: str,
        csrf: Annotated[str, Form(max_length=64)],
        key: Annotated[str, Form(max_length=64)],
        reply: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        found = await _checked(request, session, csrf)
        department = found.principal.department
        if department is None:
            return await urge_page(request, found, case_id, 403, {"action": "forbidden"})
        body = {"handler_id": found.principal.person or department, "reply": reply}
        path = f"/department/cases/{case_id}/urge-reply"
        answer = await post(request, found, path, body, key)
        if answer is None:
            return await urge_page(request, found, case_id, 503, {"action": "unavailable"})
        if answer.status_code == 202:
            return RedirectResponse(f"/cases/{case_id}?done=urge-reply", status_code=303)
        refused = _refusal(answer, ("reply",))
        return await urge_page(
            request, found, case_id, answer.status_code, refused, {"reply": reply}
        )


async def _checked(request: Request, session: Sessions, csrf: str) -> Session:
    """The person's session, and the form's CSRF token is theirs (else `SignIn`)."""
    return checked(await session(request), csrf)
