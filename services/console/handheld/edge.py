"""What the handheld's pages and the device's calls share: the person signed in, the
caller of a device call (session, role, CSRF token), a service's answer passed on as it
came, a page shown with the tabs. Every tab's module (`routes.py`, `visits.py`,
`patrol.py`, `selfhandling.py`) uses these."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path as Folder
from typing import Annotated, Any

import httpx
from fastapi import Header, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from gridloop.people import Session
from services.console.handheld import core
from services.console.kit import Pages, SignIn

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


async def person(request: Request, kit: Pages) -> Session | None:
    """The person signed in, if the handheld is theirs."""
    try:
        found = await kit.session(request)
    except SignIn:
        return None
    return found if found.principal.role in core.HANDHELD_ROLES else None


def refused(status: int, where: str, why: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": [where], "msg": why}]}, status_code=status)


async def caller(request: Request, kit: Pages, csrf: str) -> Session | JSONResponse:
    """The device's caller: signed in, a handheld role, the session's CSRF token."""
    try:
        found = await kit.session(request)
    except SignIn:
        return refused(401, "session", "sign in again")
    if not secrets.compare_digest(found.csrf, csrf):
        return refused(401, "session", "sign in again")  # a token of an ended session
    if found.principal.role not in core.HANDHELD_ROLES:
        return refused(403, "role", "the handheld is for supervisors and grid staff")
    return found


def passed_on(answer: httpx.Response | None, service: str = "intake") -> JSONResponse:
    """The service's answer as it came (status and body); 503 when it did not answer."""
    if answer is None:
        return refused(503, service, f"{service} did not answer; the device sends it again")
    try:
        body = answer.json()
    except ValueError:
        body = {"detail": [{"loc": [service], "msg": f"{answer.status_code}"}]}
    return JSONResponse(body, status_code=answer.status_code)


def shown(request: Request, kit: Pages, found: Session, name: str, **context: Any) -> Response:
    return kit.page(
        request,
        f"m/{name}.html",
        me=found,
        tabs=core.tabs(found.principal.role),
        tab=name,
        version=VERSION,
        **context,
    )


async def elsewhere(request: Request, kit: Pages) -> Response:
    """Not the handheld's: the person's own desk (or, signed out, the sign-in page)."""
    await kit.session(request)  # else SignIn
    return RedirectResponse("/", status_code=303)


async def json_body(request: Request) -> dict[str, Any]:
    try:
        sent = await request.json()
    except ValueError:
        return {}
    return sent if isinstance(sent, dict) else {}
