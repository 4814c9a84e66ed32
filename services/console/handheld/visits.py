"""走访 Visits on the handheld: a grid person picks households of their grid (the grid
service's register), logs a visit with findings by type and text, and makes a finding a
case or a dispute in the same action. Kept in the device's outbox under the key it made;
the console passes the visit, then each finding to be made a case, to the grid service
(`POST /grids/{grid}/visits` under the device's key, `POST /visits/{id}/findings/{i}/case`,
which the grid service answers with the same case when asked again), so an entry sent
twice is one visit and one case per finding."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from gridloop.citypack import CityPack
from schemas import clock
from services.console import core as desk
from services.console.handheld.edge import (
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
# What residents raise (民情): the grid service's finding types, in the form's order.
FINDING_TYPES = ("dispute", "need", "suggestion", "safety_hazard", "fire_hazard", "sanitation")
VISIT_FIELDS = ("at", "households", "findings")
FINDING_FIELDS = ("type", "text", "household")
CASE_FIELDS = ("kind", "class_code")


def case_classes(pack: CityPack | None) -> dict[str, str]:
    """What a finding may become: a dispute of one of the pack's types (`dispute:<code>`),
    or a case of the catalogue's classes (`event:<code>`, `component:<code>`)."""
    if pack is None:
        return {}
    ladder = pack.sla.disputes
    disputes = {
        f"dispute:{c}": f"矛盾纠纷 {c} {n}" for c, n in (ladder.types if ladder else {}).items()
    }
    return disputes | desk.catalogue(pack)


def visit_body(sent: Mapping[str, Any]) -> dict[str, Any]:
    """The visit as the grid service takes it: when, which doors, the findings' type, text
    and door (the grid service validates each and says which is wrong)."""
    findings = [
        {f: x[f] for f in FINDING_FIELDS if x.get(f) not in (None, "")}
        for x in sent.get("findings") or []
        if isinstance(x, dict)
    ]
    return {"at": sent.get("at"), "households": sent.get("households"), "findings": findings}


def cases_asked(sent: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The findings to be made cases: (index, the body of `…/findings/{index}/case`)."""
    point = sent.get("point")
    asked = []
    for index, x in enumerate(sent.get("findings") or []):
        if isinstance(x, dict) and isinstance(x.get("case"), dict):
            made = {f: x["case"][f] for f in CASE_FIELDS if x["case"].get(f)}
            asked.append((index, made | {"point": point}))
    return asked


async def _grid_get(found: Any, url: str, params: dict[str, str | int] | None = None) -> Any:
    answer = await ask(found, url, "GET", params=params)
    return answer.json() if answer is not None and answer.status_code == 200 else None


@router.get("/m/visits")
async def visits_page(request: Request, kit: Pages) -> Response:
    """My grids' households to pick, the visit form, and this month's visits with their
    findings (and the case each became)."""
    found = await person(request, kit)
    if found is None:
        return await elsewhere(request, kit)
    base = kit.console.grid_url
    grids = await _grid_get(found, f"{base}/staff/{found.principal.subject}/grids")
    registers: dict[str, list[dict[str, Any]]] = {}
    recent: list[dict[str, Any]] = []
    tz = kit.console.pack.city.timezone if kit.console.pack else "UTC"
    period = clock.now().astimezone(ZoneInfo(tz)).strftime("%Y-%m")
    for grid in grids or []:
        registers[grid] = await _grid_get(found, f"{base}/grids/{grid}/households") or []
        mine = await _grid_get(found, f"{base}/grids/{grid}/visits", {"period": period}) or []
        recent += [_dated(v) for v in mine if v.get("staff") == found.principal.subject][:10]
    return shown(
        request,
        kit,
        found,
        "visits",
        unavailable=grids is None,
        registers=registers,
        recent=recent,
        types=FINDING_TYPES,
        classes=case_classes(kit.console.pack),
    )


def _dated(visit: dict[str, Any]) -> dict[str, Any]:
    """A visit as the grid service answered it, its time a time (the page shows it local)."""
    at = visit.get("at")
    return visit | {"at": datetime.fromisoformat(at) if isinstance(at, str) else None}


@router.post("/m/api/visits")
async def log_visit(request: Request, kit: Pages, csrf: Csrf, key: Key) -> Response:
    """A visit made on the device, with the findings to make cases of: the visit under the
    device's key, then each such finding; a refusal of a finding is shown beside it (the
    visit stands, and the visits page offers the finding again)."""
    found = await caller(request, kit, csrf)
    if isinstance(found, JSONResponse):
        return found
    sent = await json_body(request)
    grid = str(sent.get("grid") or "")
    if not grid.isdigit() or len(grid) > 32:
        return refused(422, "grid", "choose one of your grids")
    base = kit.console.grid_url
    logged = await ask(found, f"{base}/grids/{grid}/visits", body=visit_body(sent), key=key)
    if logged is None or logged.status_code != 202:
        return passed_on(logged, "grid")
    visit = logged.json()
    turned_down: dict[int, Any] = {}
    for index, body in cases_asked(sent):
        url = f"{base}/visits/{visit['visit_id']}/findings/{index}/case"
        made = await ask(found, url, body=body)
        if made is None or made.status_code >= 500:
            return passed_on(made, "grid")  # sent again: the same visit, then its cases
        if made.status_code == 202:
            visit = made.json()["visit"]
        else:
            turned_down[index] = _said(made)
    return JSONResponse(visit | {"refused": turned_down}, status_code=202)


@router.post("/m/api/visits/{visit}/findings/{index}/case")
async def finding_case(
    request: Request,
    kit: Pages,
    visit: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")],
    index: Annotated[int, Path(ge=0, le=19)],
    csrf: Csrf,
    key: Key,
) -> Response:
    """A finding of an earlier visit made a case (or a dispute); asked again, the same."""
    found = await caller(request, kit, csrf)
    if isinstance(found, JSONResponse):
        return found
    sent = await json_body(request)
    body = {f: sent[f] for f in CASE_FIELDS if sent.get(f)} | {"point": sent.get("point")}
    url = f"{kit.console.grid_url}/visits/{visit}/findings/{index}/case"
    return passed_on(await ask(found, url, body=body), "grid")


def _said(answer: Any) -> Any:
    try:
        return answer.json().get("detail", answer.status_code)
    except ValueError:
        return answer.status_code
