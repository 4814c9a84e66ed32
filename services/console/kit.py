"""What the console's pages share: the console's parts (`Console`), and the page and
session helpers its routers use (`Kit`, on `app.state.kit`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from fastapi.responses import Response

from gridloop.audit import AuditTrail
from gridloop.cases.reader import CaseReader
from gridloop.citypack import CityPack
from gridloop.people import People, Session
from services.console.core import ROWS_MOST
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


class SignIn(Exception):
    """No live session: the person signs in first."""


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
