"""自处置 Self-handling on the handheld: a minor problem fixed on the spot, with photos before
and after, a class the pack lets be fixed so (`self_handling: true`) and the point. Kept in
the outbox under the device's key; the photos are uploaded first (each once), then intake's
`POST /self-handling` under the key derives the case from it: sent twice, one case."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gridloop.citypack import CityPack
from services.console.handheld.edge import (
    Csrf,
    Key,
    caller,
    elsewhere,
    json_body,
    passed_on,
    person,
    shown,
)
from services.console.kit import Pages, ask

router = APIRouter()
FIELDS = ("kind", "class_code", "description", "point", "before", "after", "note")


def classes(pack: CityPack | None) -> dict[str, str]:
    """Only the classes the pack lets be fixed on the spot: "kind:code" → code and name."""
    if pack is None:
        return {}
    allowed = (c for c in pack.city.classes if c.self_handling)
    return {f"{c.kind}:{c.code}": f"{c.code} {c.name}" for c in allowed}


def body(sent: Mapping[str, Any]) -> dict[str, Any]:
    """What intake takes (it validates each field, and the class's permission)."""
    return {f: sent[f] for f in FIELDS if sent.get(f) not in (None, "", [])}


@router.get("/m/selfhandling")
async def page(request: Request, kit: Pages) -> Response:
    found = await person(request, kit)
    if found is None:
        return await elsewhere(request, kit)
    offered = classes(kit.console.pack)
    return shown(request, kit, found, "selfhandling", classes=offered)


@router.post("/m/api/self-handling")
async def self_handle(request: Request, kit: Pages, csrf: Csrf, key: Key) -> Response:
    found = await caller(request, kit, csrf)
    if isinstance(found, JSONResponse):
        return found
    sent = body(await json_body(request))
    url = f"{kit.console.intake_url}/self-handling"
    return passed_on(await ask(found, url, body=sent, key=key))
