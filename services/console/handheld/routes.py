"""The handheld's pages under `/m/` and the JSON calls its outbox makes.

Pages are served like every console page (`Kit.page`, the same sign-in and session), and
kept by the service worker for offline use. The JSON calls are the device's: each carries
the session's CSRF token in `X-CSRF-Token` (the page's forms never post) and, for an
action, the `Idempotency-Key` the device made when the person acted; the console passes
both the action and the key to intake's own API with the person's session token
(`kit.ask`), so intake decides, dedupes a repeat, and its refusal comes back as it is.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path as Folder
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, FastAPI, File, Header, Path, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from gridloop.people import Session
from schemas import clock
from services.console import core as desk
from services.console.handheld import core
from services.console.kit import Pages, SignIn, ask

router = APIRouter()
API = "/m/api/"  # the device's calls: refusals in JSON, never a page
HERE = Folder(__file__).parents[1]
STATIC = HERE / "static" / "m"
UPLOAD_MAX = 10 * 1024 * 1024  # intake's largest (a photo): a larger one it refuses anyway
Csrf = Annotated[str, Header(alias="X-CSRF-Token", max_length=64)]
Key = Annotated[str, Header(alias="Idempotency-Key", min_length=16, max_length=200)]
CaseId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def shell_version() -> str:
    """The shell's version: a digest of the handheld's static files and templates, so the
    service worker replaces its cache whenever one of them changes."""
    digest = hashlib.sha256()
    for folder in (STATIC, HERE / "templates" / "m"):
        for path in sorted(folder.iterdir()):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


VERSION = shell_version()


async def _person(request: Request, kit: Pages) -> Session | None:
    """The person signed in, if the handheld is theirs."""
    try:
        found = await kit.session(request)
    except SignIn:
        return None
    return found if found.principal.role in core.HANDHELD_ROLES else None


def _refused(status: int, where: str, why: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": [where], "msg": why}]}, status_code=status)


async def _caller(request: Request, kit: Pages, csrf: str) -> Session | JSONResponse:
    """The device's caller: signed in, a handheld role, the session's CSRF token."""
    try:
        found = await kit.session(request)
    except SignIn:
        return _refused(401, "session", "sign in again")
    if not secrets.compare_digest(found.csrf, csrf):
        return _refused(401, "session", "sign in again")  # a token of an ended session
    if found.principal.role not in core.HANDHELD_ROLES:
        return _refused(403, "role", "the handheld is for supervisors and grid staff")
    return found


def _passed_on(answer: httpx.Response | None) -> JSONResponse:
    """Intake's answer as it came (status and body); 503 when it did not answer."""
    if answer is None:
        return _refused(503, "intake", "intake did not answer; the device sends it again")
    try:
        body = answer.json()
    except ValueError:
        body = {"detail": [{"loc": ["intake"], "msg": f"{answer.status_code}"}]}
    return JSONResponse(body, status_code=answer.status_code)


# --- pages ------------------------------------------------------------------------------------


def _shown(request: Request, kit: Pages, found: Session, name: str, **context: Any) -> Response:
    return kit.page(
        request,
        f"m/{name}.html",
        me=found,
        tabs=core.tabs(found.principal.role),
        tab=name,
        version=VERSION,
        **context,
    )


@router.get("/m/")
async def tasks_page(request: Request, kit: Pages) -> Response:
    """My tasks (我的任务): 核实 and 核查, each with its due time and light; offline, the
    service worker shows the last copy (its time is on it)."""
    found = await _person(request, kit)
    if found is None:
        return await _elsewhere(request, kit)
    lists: dict[str, list[core.Task]] = {"verification": [], "check": []}
    unavailable = False
    if found.principal.role in core.SUPERVISOR:  # the tasks intake gives supervisors
        for task in lists:
            url = f"{kit.console.intake_url}/tasks/{task}"
            answer = await ask(found, url, method="GET", params={"limit": 100})
            if answer is None or answer.status_code != 200:
                unavailable = True
                continue
            lists[task] = core.tasks(task, answer.json(), clock.now())
    pack = kit.console.pack
    return _shown(
        request,
        kit,
        found,
        "tasks",
        lists=lists,
        unavailable=unavailable,
        classes=desk.catalogue(pack) if pack else {},
        as_of=clock.now(),
    )


@router.get("/m/report")
async def report_page(request: Request, kit: Pages) -> Response:
    """Report (上报): class, description, photos, a voice note, the GPS point (editable)."""
    found = await _person(request, kit)
    if found is None:
        return await _elsewhere(request, kit)
    pack = kit.console.pack
    offered = found.principal.role in core.CHANNELS
    classes = desk.catalogue(pack) if pack else {}
    return _shown(request, kit, found, "report", classes=classes, offered=offered)


@router.get("/m/outbox")
async def outbox_page(request: Request, kit: Pages) -> Response:
    """What waits on the device to be sent (the device lists it: `outbox.js`)."""
    found = await _person(request, kit)
    if found is None:
        return await _elsewhere(request, kit)
    return _shown(request, kit, found, "outbox")


async def _elsewhere(request: Request, kit: Pages) -> Response:
    """Not the handheld's: the person's own desk (or, signed out, the sign-in page)."""
    await kit.session(request)  # else SignIn
    return RedirectResponse("/", status_code=303)


@router.get("/m/manifest.webmanifest")
async def manifest() -> Response:
    """The web app manifest: installed, the handheld opens on its tasks, standalone."""
    icons = [
        {"src": f"/static/m/icon-{size}.png", "sizes": f"{size}x{size}", "type": "image/png"}
        for size in (192, 512)
    ]
    icons.append({**icons[-1], "purpose": "maskable"})
    body = {
        "name": "城管通 · gridloop",
        "short_name": "城管通",
        "description": "网格化管理：核实、核查、上报（离线可用）",
        "lang": "zh-CN",
        "start_url": "/m/",
        "scope": "/m/",
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#ffffff",
        "theme_color": "#0b5d3b",
        "icons": icons,
    }
    return Response(
        json.dumps(body, ensure_ascii=False),
        media_type="application/manifest+json",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/m/sw.js")
async def service_worker() -> Response:
    """The service worker, at `/m/` so that its scope is the handheld's; its cache is named
    after the shell's version."""
    script = (STATIC / "sw.js").read_text(encoding="utf-8").replace("@VERSION@", VERSION)
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return Response(script, media_type="text/javascript", headers=headers)


# --- the device's calls -----------------------------------------------------------------------


@router.get("/m/api/me")
async def me(request: Request, kit: Pages) -> Response:
    """Who is signed in, and the session's CSRF token the device's calls carry: the outbox
    asks first, so it sends under the current session (or says to sign in again)."""
    found = await _person(request, kit)
    if found is None:
        return _refused(401, "session", "sign in again")
    who = found.principal
    body = {"role": who.role.value, "subject": who.subject, "name": found.name}
    headers = {"Cache-Control": "no-store"}
    return JSONResponse(body | {"csrf": found.csrf}, headers=headers)


@router.post("/m/api/media")
async def upload(
    request: Request, kit: Pages, csrf: Csrf, file: Annotated[UploadFile, File()]
) -> Response:
    """A photo or voice note, passed to intake's `POST /media` with the person's session
    token. Sent again (its answer lost), intake answers with the same upload: the same
    uploader's same bytes are one upload."""
    found = await _caller(request, kit, csrf)
    if isinstance(found, JSONResponse):
        return found
    data = await file.read(UPLOAD_MAX + 1)
    sent = {"file": (file.filename or "upload", data, "application/octet-stream")}
    headers = {"Authorization": f"Bearer {found.token}"}
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:
            answer = await client.post(
                f"{kit.console.intake_url}/media", files=sent, headers=headers
            )
    except httpx.HTTPError:
        return _passed_on(None)
    return _passed_on(answer)


@router.post("/m/api/reports")
async def report(request: Request, kit: Pages, csrf: Csrf, key: Key) -> Response:
    """A report made on the device, sent under its key: intake derives the case from it,
    so a report sent twice is one case."""
    found = await _caller(request, kit, csrf)
    if isinstance(found, JSONResponse):
        return found
    who = found.principal
    body = core.report_body(who.role, who.subject, await _json(request))
    if body is None:
        return _refused(403, "channel", "intake takes no report from this role yet")
    return _passed_on(await ask(found, f"{kit.console.intake_url}/reports", body=body, key=key))


@router.post("/m/api/cases/{case_id}/{action}")
async def act(
    request: Request, kit: Pages, case_id: CaseId, action: str, csrf: Csrf, key: Key
) -> Response:
    """A verification (核实) or check (核查) made on the device, sent under its key."""
    fields = {"verification": core.VERIFICATION_FIELDS, "check": core.CHECK_FIELDS}.get(action)
    if fields is None:
        return _refused(404, "action", f"no action {action[:40]}")
    found = await _caller(request, kit, csrf)
    if isinstance(found, JSONResponse):
        return found
    body = core.answer_body(fields, await _json(request))
    url = f"{kit.console.intake_url}/cases/{case_id}/{action}"
    return _passed_on(await ask(found, url, body=body, key=key))


async def _json(request: Request) -> dict[str, Any]:
    try:
        sent = await request.json()
    except ValueError:
        return {}
    return sent if isinstance(sent, dict) else {}


def install(app: FastAPI) -> None:
    # The field tabs, each its own module (they use this module's helpers: imported here).
    from services.console.handheld import patrol, selfhandling, visits

    app.include_router(router)
    for tab in (visits, patrol, selfhandling):
        app.include_router(tab.router)
