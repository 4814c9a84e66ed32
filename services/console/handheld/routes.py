"""The handheld's pages under `/m/` and the JSON calls its outbox makes.

Pages are served like every console page (`Kit.page`, the same sign-in and session), and
kept by the service worker for offline use. The JSON calls are the device's: each carries
the session's CSRF token in `X-CSRF-Token` (the page's forms never post) and, for an
action, the `Idempotency-Key` the device made when the person acted; the console passes
both the action and the key to intake's own API with the person's session token
(`kit.ask`), so intake decides, dedupes a repeat, and its refusal comes back as it is.
"""

from __future__ import annotations

import json
from typing import Annotated

import httpx
from fastapi import APIRouter, FastAPI, File, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from schemas import clock
from services.console import core as desk
from services.console.handheld import core
from services.console.handheld.edge import (
    API,
    STATIC,
    UPLOAD_MAX,
    VERSION,
    CaseId,
    Csrf,
    Key,
    caller,
    elsewhere,
    json_body,
    passed_on,
    person,
    refused,
    shown,
)
from services.console.kit import Pages, ask

router = APIRouter()
__all__ = ["API", "install"]

# --- pages ------------------------------------------------------------------------------------


@router.get("/m/")
async def tasks_page(request: Request, kit: Pages) -> Response:
    """My tasks (我的任务): 核实 and 核查, each with its due time and light; offline, the
    service worker shows the last copy (its time is on it)."""
    found = await person(request, kit)
    if found is None:
        return await elsewhere(request, kit)
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
    return shown(
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
    found = await person(request, kit)
    if found is None:
        return await elsewhere(request, kit)
    pack = kit.console.pack
    offered = found.principal.role in core.CHANNELS
    classes = desk.catalogue(pack) if pack else {}
    return shown(request, kit, found, "report", classes=classes, offered=offered)


@router.get("/m/outbox")
async def outbox_page(request: Request, kit: Pages) -> Response:
    """What waits on the device to be sent (the device lists it: `outbox.js`)."""
    found = await person(request, kit)
    if found is None:
        return await elsewhere(request, kit)
    return shown(request, kit, found, "outbox")


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
    found = await person(request, kit)
    if found is None:
        return refused(401, "session", "sign in again")
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
    found = await caller(request, kit, csrf)
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
        return passed_on(None)
    return passed_on(answer)


@router.post("/m/api/reports")
async def report(request: Request, kit: Pages, csrf: Csrf, key: Key) -> Response:
    """A report made on the device, sent under its key: intake derives the case from it,
    so a report sent twice is one case."""
    found = await caller(request, kit, csrf)
    if isinstance(found, JSONResponse):
        return found
    who = found.principal
    body = core.report_body(who.role, who.subject, await json_body(request))
    if body is None:
        return refused(403, "channel", "intake takes no report from this role yet")
    return passed_on(await ask(found, f"{kit.console.intake_url}/reports", body=body, key=key))


@router.post("/m/api/cases/{case_id}/{action}")
async def act(
    request: Request, kit: Pages, case_id: CaseId, action: str, csrf: Csrf, key: Key
) -> Response:
    """A verification (核实) or check (核查) made on the device, sent under its key."""
    fields = {"verification": core.VERIFICATION_FIELDS, "check": core.CHECK_FIELDS}.get(action)
    if fields is None:
        return refused(404, "action", f"no action {action[:40]}")
    found = await caller(request, kit, csrf)
    if isinstance(found, JSONResponse):
        return found
    body = core.answer_body(fields, await json_body(request))
    url = f"{kit.console.intake_url}/cases/{case_id}/{action}"
    return passed_on(await ask(found, url, body=body, key=key))


def install(app: FastAPI) -> None:
    # The field tabs, each its own module (they use this module's helpers: imported here).
    from services.console.handheld import patrol, selfhandling, visits

    app.include_router(router)
    for tab in (visits, patrol, selfhandling):
        app.include_router(tab.router)
