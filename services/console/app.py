"""The workbench's pages: sign-in, each role's desk (a department's queue, the command
centre's, the intake operator's), the case page and its actions, the live news; the map
and the case's photos are `screens.py`'s, what the routers share `kit.py`'s.

Thin: reads go through the kernel's `CaseReader`, decisions through `core`, and every action
is a call of the services' own API (dispatch's or intake's, `core.call`) with the person's
session token as its bearer token — the API decides, and a refusal is shown beside the
field it names. Forms carry the
session's CSRF token; the session cookie is HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from gridloop.access import Role
from gridloop.audit import signing
from gridloop.cases.lights import light
from gridloop.http import client_address, networks
from gridloop.people import Session
from gridloop.runtime import add_ops_routes
from schemas import clock
from services.console import (
    approvals,
    callbacks,
    core,
    disputes,
    handheld,
    knowledge,
    maps,
    patrols,
    screens,
)
from services.console.handheld.core import HANDHELD_ROLES
from services.console.kit import Console, Kit, Rows, SignIn, ask, checked
from services.console.live import projected
from services.console.screens import refusal, upload
from services.console.words import LANGS, Lang, words

__all__ = ["Console", "create_app"]
HERE = Path(__file__).parent
SESSION, LANG, LOGIN = "gridloop_session", "gridloop_lang", "gridloop_login"
SERVICE = "console"
KEEP_ALIVE = 15.0  # seconds between comments on a quiet news stream


def create_app(console: Console) -> FastAPI:
    app = FastAPI(title="gridloop console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    # The sign-in throttle's and the audit's address: the door's rule, not uvicorn's.
    proxies = networks(console.trusted_proxies)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["rows_most"] = core.ROWS_MOST
    templates.env.filters["local"] = lambda at, form="%Y-%m-%d %H:%M": (
        at.astimezone(console.zone).strftime(form) if at is not None else "—"
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    add_ops_routes(app)
    app.include_router(screens.router)

    @app.exception_handler(SignIn)
    async def sign_in_first(request: Request, exc: SignIn) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def form_refused(request: Request, exc: RequestValidationError) -> Response:
        """A form the console's own limits refuse (a field too long, one missing): the
        page again, with the reason beside the field — never FastAPI's JSON — and nothing
        done."""
        if request.url.path.startswith(handheld.API):  # the device's calls: JSON, as intake's
            return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
        values = core.form_values(exc.body)
        if request.url.path == "/login":
            username = values.get("username", "")[:64]
            return page(request, "login.html", 422, csrf="", error="invalid", username=username)
        found = await session(request)
        case_id = request.path_params.get("case_id")
        if case_id is None:
            return page(request, "elsewhere.html", 422, me=found)
        errors = core.form_errors(exc.errors())
        action = str(request.path_params.get("action", ""))
        return await _case(request, found, str(case_id), 422, errors, values, action)

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        lang = _lang(request)
        # When its reads began: a live page hears the news told since (`Live.follow`).
        since = getattr(request.state, "since", None)
        shown = templates.TemplateResponse(
            request,
            name,
            {"t": words(lang), "lang": lang, "since": since, **context},
            status_code=status,
        )
        if request.query_params.get("lang") in LANGS:
            shown.set_cookie(LANG, lang, httponly=True, samesite="strict")
        shown.headers["Cache-Control"] = "no-store"
        return shown

    async def session(request: Request) -> Session:
        request.state.since = time.time()  # before the page reads anything
        token = request.cookies.get(SESSION)
        found = await console.people.session(token) if token else None
        if found is None:
            raise SignIn()
        return found

    app.state.kit = Kit(console, page, session)  # what the screens' routers share

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        nonce = secrets.token_urlsafe(24)
        shown = page(request, "login.html", csrf=nonce, error=None, username="")
        shown.set_cookie(LOGIN, nonce, httponly=True, samesite="strict", path="/login")
        return shown

    @app.post("/login", response_class=HTMLResponse)
    async def login(
        request: Request,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=256)],
        csrf: Annotated[str, Form(max_length=64)],
    ) -> Response:
        address = client_address(request.scope, proxies)
        expected = request.cookies.get(LOGIN)
        if not expected or not secrets.compare_digest(expected, csrf):
            return page(request, "login.html", 400, csrf="", error="refused", username=username)
        if not await console.throttle.allowed(username, address):
            await console.trail.add(signing(SERVICE, username, None, "sign-in throttled", address))
            return page(request, "login.html", 429, csrf=csrf, error="throttled", username=username)
        found = await console.people.sign_in(username, password)
        if found is None:
            await console.throttle.failed(username, address)
            await console.trail.add(signing(SERVICE, username, None, "sign-in refused", address))
            return page(request, "login.html", 401, csrf=csrf, error="refused", username=username)
        await console.trail.add(signing(SERVICE, username, found.principal, "signed in", address))
        home = RedirectResponse("/", status_code=303)
        home.set_cookie(
            SESSION,
            found.token,
            httponly=True,
            samesite="strict",
            secure=console.secure_cookies,
            expires=found.expires,
        )
        home.delete_cookie(LOGIN, path="/login")
        return home

    @app.post("/logout")
    async def logout(request: Request, csrf: Annotated[str, Form(max_length=64)]) -> Response:
        found = await session(request)
        checked(found, csrf)
        await console.people.sign_out(found.token)
        address = client_address(request.scope, proxies)
        who = found.principal
        await console.trail.add(signing(SERVICE, who.person or "", who, "signed out", address))
        out = RedirectResponse("/login", status_code=303)
        out.delete_cookie(SESSION)
        return out

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request, rows: Rows = core.ROWS) -> Response:
        found = await session(request)
        department = found.principal.department
        if found.principal.role is Role.command_centre:
            return await centre(request, found, rows)
        if found.principal.role is Role.supervision_centre:
            return await intake(request, found, rows)
        if found.principal.role is Role.shift_lead:
            return RedirectResponse("/approvals", status_code=303)  # the shift lead's desk
        if found.principal.role is Role.hotline:
            return RedirectResponse("/callbacks", status_code=303)  # 回访
        if found.principal.role in HANDHELD_ROLES:  # in the street: the handheld (城管通)
            return RedirectResponse("/m/", status_code=303)
        if found.principal.role is Role.tier_office:
            return RedirectResponse("/disputes", status_code=303)  # 矛盾纠纷调处
        if department is None:
            return page(request, "elsewhere.html", me=found)
        cases = await console.reader.of_department(
            department, (*core.ON_DESK, *core.DONE), limit=rows
        )
        shown = core.rows(cases, department, clock.now())
        queues = {q: [r for r in shown if r.queue is q] for q in core.Queue}
        # one read feeds every queue of the desk: "more" is offered on each when it is full
        return page(request, "queue.html", me=found, queues=queues, page_rows=rows, full=len(cases))

    async def centre(request: Request, found: Session, rows: int) -> Response:
        """The command centre's desk (派遣员, 值班长): cases to dispatch again, requests to
        answer, cases overdue."""
        now = clock.now()
        queues = {
            "returned": await console.reader.in_states(core.REDISPATCH, limit=rows),
            "requests": await console.reader.with_pending_request(now, limit=rows),
            "overdue": await console.reader.overdue(now, limit=rows),
        }
        lights = {c.case_id: light(c, now) for cases in queues.values() for c in cases}
        tiers = {c.case_id: core.escalated(c) for c in queues["overdue"]}
        return page(
            request,
            "centre.html",
            me=found,
            queues=queues,
            lights=lights,
            tiers=tiers,
            page_rows=rows,
        )

    async def intake(request: Request, found: Session, rows: int) -> Response:
        """The supervision centre's intake desk (受理员): reports awaiting verification
        (核实, soonest due first) and reports awaiting a filing decision."""
        queues = {
            "verifying": await console.reader.awaiting_verification(None, limit=rows),
            "filing": await console.reader.awaiting_filing(limit=rows),
        }
        return page(request, "intake.html", me=found, queues=queues, page_rows=rows)

    @app.get("/live")
    async def live(request: Request, since: float | None = None) -> Response:
        """Server-Sent Events: `changed` with a case id, for each case the person's
        pages show that changed (`since`: the page's reads began then, so the news told
        after, before it listened, too); a comment every 15 s keeps proxies from closing
        it."""
        found = await session(request)

        async def news() -> AsyncIterator[str]:
            async with console.live.follow(found.principal.department, since) as queue:
                yield "retry: 2000\n\n"
                while not await request.is_disconnected():
                    try:
                        case_id = await asyncio.wait_for(queue.get(), KEEP_ALIVE)
                    except TimeoutError:
                        yield ": still here\n\n"
                        continue
                    yield f"event: changed\ndata: {json.dumps(case_id)}\n\n"

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(news(), media_type="text/event-stream", headers=headers)

    @app.get("/cases/{case_id}", response_class=HTMLResponse)
    async def case_page(request: Request, case_id: str) -> Response:
        found = await session(request)
        return await _case(request, found, case_id)

    async def _case(
        request: Request,
        found: Session,
        case_id: str,
        status: int = 200,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
        failed: str | None = None,
    ) -> Response:
        department = found.principal.department
        case = await console.reader.record(case_id)
        if case is None or not core.visible(found.principal, case, console.pack):
            return page(request, "missing.html", 404, me=found, case_id=case_id)
        offered = core.actions(case, department) if department else ()
        role, pack = found.principal.role, console.pack
        similar: list[core.Similar] = []
        if role is Role.command_centre:
            offered = core.centre_actions(case)
        elif role is Role.supervision_centre:
            if case.state in core.AWAITING_INTAKE and (keys := core.similar_keys(case)):
                similar = core.similar(case, await console.reader.near(keys, limit=200))
            offered = core.intake_actions(case, similar)
        suggested = core.suggestion(pack, case) if pack and role is Role.command_centre else None
        found_answers = None  # the knowledge base: a consultation answered directly
        if role is Role.supervision_centre and knowledge.answerable(case):
            q = request.query_params.get("q") or (values or {}).get("q", "")
            found_answers = await knowledge.search(console.intake_url, found, q[:200])
        return page(
            request,
            "case.html",
            status,
            me=found,
            case=case,
            light=light(case, clock.now()),
            actions=offered,
            key=uuid.uuid4().hex,
            errors=errors or {},
            values=values or {},
            failed=failed,
            fields=core.fields,
            departments=console.departments,
            classes=core.catalogue(pack) if pack else {},
            phrases=pack.city.phrases if pack else {},
            similar=similar,
            knowledge=found_answers,
            suggested=suggested,
            photos=core.photos(case, console.intake_url),
            stages=core.stage_lights(case, clock.now()),
            small_map=maps.case_map(pack, case) if pack else None,
            who=core.who,
            filed_class=core.filed_class,
            done=request.query_params.get("done"),
        )

    @app.post("/cases/{case_id}/{action:path}", response_class=HTMLResponse)
    async def act(
        request: Request,
        case_id: str,
        action: str,
        csrf: Annotated[str, Form(max_length=64)],
        key: Annotated[str, Form(max_length=64)],
        note: Annotated[str, Form(max_length=2000)] = "",
        reason: Annotated[str, Form(max_length=2000)] = "",
        department: Annotated[str, Form(max_length=32)] = "",
        assisting: Annotated[list[str] | None, Form(max_length=10)] = None,
        class_code: Annotated[str, Form(max_length=20)] = "",
        into_case_id: Annotated[str, Form(max_length=64)] = "",
        deadline: Annotated[str, Form(max_length=40)] = "",
        knowledge_id: Annotated[str, Form(max_length=40)] = "",
        q: Annotated[str, Form(max_length=200)] = "",
        photos: Annotated[UploadFile | None, File()] = None,
    ) -> Response:
        found = await session(request)
        checked(found, csrf)
        form = {
            "note": note,
            "reason": reason,
            "department": department,
            "assisting": ",".join(assisting or []),
            "class_code": class_code,
            "into_case_id": into_case_id,
            "deadline": core.local_deadline(deadline, console.zone) if deadline else "",
            "knowledge_id": knowledge_id,
            "q": q,  # the search an answer came from: shown again if it is refused
        }
        if photos is not None and photos.filename and "photos" in core.fields(action):
            link, refused = await upload(console.intake_url, photos, found.token)
            if link is None:
                status = 503 if "action" in refused else 422
                return await _case(request, found, case_id, status, refused, form, action)
            form["photos"] = link
        asked = core.call(found.principal, case_id, action, form)
        if asked is None:
            return await _case(request, found, case_id, 403, {"action": "forbidden"}, form, action)
        base = console.dispatch_url if asked.service == "dispatch" else console.intake_url
        answer = await ask(found, base + asked.path, body=asked.body, key=key)
        if answer is None:
            return await _case(
                request, found, case_id, 503, {"action": "unavailable"}, form, action
            )
        if answer.status_code == 202:
            # The page the person lands on shows what they just did.
            events = answer.json().get("events") or []
            await projected(console.reader, dict.fromkeys(events, case_id))
            return RedirectResponse(f"/cases/{case_id}?done={action}", status_code=303)
        refused = refusal(answer)
        return await _case(request, found, case_id, answer.status_code, refused, form, action)

    approvals.install(app, templates, page, session)  # the shift lead's desk and 督办
    callbacks.install(app, page, session)  # the hotline's callbacks (回访)
    patrols.install(app, page, session)  # who patrols where now (巡查, the grid service)
    handheld.install(app)  # the handheld (城管通) under /m/
    disputes.install(app, page, session)  # a tier office's disputes (矛盾纠纷)
    return app


def _lang(request: Request) -> Lang:
    asked = request.query_params.get("lang") or request.cookies.get(LANG)
    return "en" if asked == "en" else "zh"
