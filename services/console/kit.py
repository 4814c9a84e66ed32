"""What the console's pages share: the console's parts (`Console`), and the page and
session helpers its routers use (`Kit`, on `app.state.kit`)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import Depends, Query, Request
from fastapi.responses import Response

from gridloop.audit import AuditTrail
from gridloop.cases.reader import CaseReader
from gridloop.citypack import CityPack
from gridloop.people import People, Session
from services.console.core import ROWS_MOST, errors_by_field
from services.console.live import Live
from services.console.throttle import Throttle


@dataclass
class Console:
    people: People
    reader: CaseReader
    trail: AuditTrail
    dispatch_url: str  # the dispatch service's API, which decides the department's and
    # the command centre's actions
    throttle: Throttle
    live: Live  # the open pages' news, fed by the lifecycle topics (`gridloop.kafka.tail`)
    departments: dict[str, str] = field(default_factory=dict)  # code → name (the pack's)
    intake_url: str = "http://127.0.0.1:8000"  # intake's API: filing, voiding, merging; media
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))  # the city's
    secure_cookies: bool = False  # behind TLS: cookies only over HTTPS
    # Whose X-Forwarded-For names the client (`GRIDLOOP_TRUSTED_PROXIES`, as at every door).
    trusted_proxies: str = ""
    # The city pack: the catalogue for class correction, the canned phrases (惯用语), the
    # routing the dispatcher's suggestion follows, the grids of the maps.
    pack: CityPack | None = None
    # The grid service's API (services/grid): who patrols where now (`patrols.py`).
    grid_url: str = "http://127.0.0.1:8006"


class SignIn(Exception):
    """No live session (or a form whose CSRF token is not the session's: nothing done):
    the person signs in first."""


def checked(found: Session, csrf: str) -> Session:
    """The person's session, once the form's CSRF token is theirs (else `SignIn`)."""
    if not secrets.compare_digest(found.csrf, csrf):
        raise SignIn()
    return found


async def ask(
    found: Session,
    url: str,
    method: str = "POST",
    body: Any = None,
    key: str | None = None,
    params: dict[str, str | int] | None = None,
) -> httpx.Response | None:
    """A service API's answer to the person's action, asked with their session token, so
    the API decides with their authority (None: it did not answer). `key`, made when the
    form was shown, is the Idempotency-Key: the same form sent twice is one action."""
    headers = {"Authorization": f"Bearer {found.token}"}
    if key:
        headers["Idempotency-Key"] = key
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            return await client.request(method, url, json=body, params=params, headers=headers)
    except httpx.HTTPError:
        return None


def refused(answer: httpx.Response, fields: Collection[str]) -> dict[str, str]:
    """A service API's refusal of a desk's form, by the form field each problem names
    (`core.errors_by_field`; a choice left blank said as `missing`), the rest beside the
    action; an answer without a `detail` by its status."""
    try:
        said = answer.json()
    except ValueError:
        said = None
    detail = said.get("detail") if isinstance(said, dict) else None
    return errors_by_field(detail, fields, missing="missing") or {"action": f"{answer.status_code}"}


@dataclass(frozen=True)
class Kit:
    console: Console
    page: Callable[..., Response]  # (request, template, status, **context): the page shown
    session: Callable[[Request], Awaitable[Session]]  # the person's, or SignIn


def _kit(request: Request) -> Kit:
    found: Kit = request.app.state.kit
    return found


Pages = Annotated[Kit, Depends(_kit)]

# How many cases of each queue a desk shows (`core.ROWS` first, more when asked).
Rows = Annotated[int, Query(ge=1, le=ROWS_MOST)]
