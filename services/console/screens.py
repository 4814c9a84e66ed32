"""The screens drawn from the city pack and intake's uploads: the map (the pack's grids,
the open cases by light) and the case's photos, fetched with the person's own authority."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from gridloop.cases.lights import light
from gridloop.cases.reader import DOTS
from gridloop.lifecycle import OPEN_STATES, State
from schemas import clock
from services.console import core, maps
from services.console.kit import Pages

router = APIRouter()
# The map shows the open cases a person acts on first: of each state (or of a department),
# those nearest their deadline or latest changed. A read costs the cases it reads, and a
# map of thousands of dots shows no more than a few hundred do.
MAP_MOST = 600  # open cases on the map at most
MAP_READ = 50  # read of each state (or a department's)
OPEN = tuple(s for s in State if s in OPEN_STATES)
PHOTO_MAX = 10 * 1024 * 1024  # intake's limit for a photo: a larger one it refuses anyway


@router.get("/map", response_class=HTMLResponse)
async def city_map(
    request: Request,
    kit: Pages,
    class_code: Annotated[str, Query(alias="class", max_length=20)] = "",
    street: Annotated[str, Query(max_length=3)] = "",
    department: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    """The pack's grids and the open cases on them, coloured by light; a department's
    own cases only."""
    found = await kit.session(request)
    if kit.console.pack is None:
        return kit.page(request, "elsewhere.html", me=found)
    own = found.principal.department
    filters = maps.Filters(class_code, street, own or department)
    now, where, reader = clock.now(), filters.where(), kit.console.reader
    if filters.department:  # a department's own map, or the centre's for one department
        held = filters.department
        cases = await reader.of_department(held, OPEN, MAP_READ, now, where, DOTS)
    else:  # of each open state, the cases nearest their deadline or the latest changed
        cases = await reader.open_cases(now, MAP_READ, where)
    shown = [c for c in cases if filters.keep(c)][:MAP_MOST]
    lights = {c.case_id: light(c, now) for c in shown}
    pack = kit.console.pack
    f = maps.frame(pack.polygon(g.code).bounds for g in pack.grids)
    grids = maps.drawn(f, pack, [g.code for g in pack.grids])
    return kit.page(
        request,
        "map.html",
        me=found,
        frame=f,
        grids=grids,
        dots=maps.dots(f, shown, lights),
        filters=filters,
        classes=core.catalogue(pack),
        streets={code: s.name for code, s in pack.streets.items()},
        departments=kit.console.departments,
    )


@router.get("/cases/{case_id}/media/{media_id}")
async def case_photo(request: Request, kit: Pages, case_id: str, media_id: str) -> Response:
    """A photo of the case, fetched from intake with the person's own authority (intake
    decides, and records the read); only the case's own photos, of a case the person
    may see."""
    found = await kit.session(request)
    case = await kit.console.reader.record(case_id)
    if case is None or not core.visible(found.principal, case, kit.console.pack):
        return Response(status_code=404)
    if media_id not in core.photos(case, kit.console.intake_url):
        return Response(status_code=404)
    headers = {"Authorization": f"Bearer {found.token}"}
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            answer = await client.get(f"{kit.console.intake_url}/media/{media_id}", headers=headers)
    except httpx.HTTPError:
        return Response(status_code=503)
    if answer.status_code != 200:
        return Response(status_code=404)
    kind = answer.headers.get("content-type", "application/octet-stream")
    private = {"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"}
    return Response(answer.content, media_type=kind, headers=private)


async def upload(
    intake_url: str, photo: UploadFile, token: str
) -> tuple[str | None, dict[str, str]]:
    """The photo uploaded to intake with the person's authority (intake checks its type and
    size): its link, or the refusal beside the field."""
    data = await photo.read(PHOTO_MAX + 1)
    upload = {"file": (photo.filename or "photo", data, "application/octet-stream")}
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(timeout=30.0) as client:
            answer = await client.post(f"{intake_url}/media", files=upload, headers=headers)
    except httpx.HTTPError:
        return None, {"action": "unavailable"}
    if answer.status_code == 201 and answer.json().get("kind") != "photo":
        return None, {"photos": "JPEG, PNG, WebP"}  # a voice note is no after-photo
    if answer.status_code == 201:
        return f"{intake_url}/media/{answer.json()['media_id']}", {}
    return None, {"photos": refusal(answer).get("photos") or f"{answer.status_code}"}


def refusal(answer: httpx.Response) -> dict[str, str]:
    """The API's refusal, by the form field it names (`core.form_errors`)."""
    try:
        detail = answer.json().get("detail") or []
    except ValueError:
        return {"action": f"{answer.status_code}"}
    errors = core.form_errors(detail if isinstance(detail, list) else [])
    return errors or {"action": f"{answer.status_code}"}
