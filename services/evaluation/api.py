"""The evaluation service's HTTP API: league tables, one entity's score, and the cases
behind any figure (drill-down). Staff read it; the big screen (`screen.py`) is public."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request

from gridloop.auth import CredentialStore, Principal, Role, require
from gridloop.errors import install_error_handlers, refusals
from gridloop.http import HttpLimits, harden
from gridloop.refusal import invalid, not_found
from gridloop.runtime import add_ops_routes
from gridloop.scoring import BadPeriod, Indicator, Level, Score, period_kind
from services.evaluation import screen
from services.evaluation.hotline import RANKED, Ranked, ranking
from services.evaluation.store import ScoreStore

STAFF = tuple(r for r in Role if r is not Role.public)
Staff = Annotated[Principal, Depends(require(*STAFF))]
# Department, street, community and grid codes, supervisor ids.
Entity = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
router = APIRouter()


def _store(request: Request) -> ScoreStore:
    store: ScoreStore = request.app.state.scores
    return store


Store = Annotated[ScoreStore, Depends(_store)]


def _period(period: str, where: str) -> str:
    """Refuse (422) a period that is not a real day, ISO week or month."""
    try:
        period_kind(period)
    except BadPeriod as exc:
        raise invalid((where, "period"), str(exc), "value_error.period") from exc
    return period


@router.get("/scores", responses=refusals(401, 403))
async def league(
    _: Staff,
    store: Store,
    level: Level,
    period: Annotated[str, Query(min_length=7, max_length=10)],
) -> list[Score]:
    """Every entity of `level` over `period` (2026-11-29, 2026-W48, 2026-11), best first."""
    return await store.league(level, _period(period, "query"))


@router.get("/rankings", responses=refusals(401, 403))
async def rankings(
    _: Staff,
    store: Store,
    level: Level,
    period: Annotated[str, Query(min_length=7, max_length=10)],
) -> list[Ranked]:
    """The hotline's ranking (12345 排名) of streets, departments or districts over
    `period` by the composite of their three callback rates, best first."""
    if level not in RANKED:
        ranked = ", ".join(r.value for r in RANKED)
        raise invalid(("query", "level"), f"the hotline ranks {ranked}", "not_ranked")
    return ranking(await store.league(level, _period(period, "query")))


@router.get("/scores/{level}/{entity}/{period}", responses=refusals(401, 403, 404))
async def one(_: Staff, store: Store, level: Level, entity: Entity, period: str) -> Score:
    found = await store.score(level, entity, _period(period, "path"))
    if found is None:
        raise not_found(("path", "entity"), f"no {level.value} {entity} scored over {period}")
    return found


@router.get("/scores/{level}/{entity}/{period}/{indicator}/cases", responses=refusals(401, 403))
async def cases(
    who: Staff, store: Store, level: Level, entity: Entity, period: str, indicator: Indicator
) -> dict[str, Any]:
    """The cases one figure counted: its numerator and its denominator. A department is
    shown only the cases dispatched to it (`not_shown` counts the others)."""
    counted, shown = await store.cases(
        level, entity, _period(period, "path"), indicator, who.department
    )
    return {
        "level": level,
        "entity": entity,
        "period": period,
        "indicator": indicator,
        "numerator": shown.numerator,
        "denominator": shown.denominator,
        "not_shown": {
            "numerator": len(counted.numerator) - len(shown.numerator),
            "denominator": len(counted.denominator) - len(shown.denominator),
        },
    }


def create_app(
    store: ScoreStore, credentials: CredentialStore, limits: HttpLimits | None = None
) -> FastAPI:
    app = FastAPI(title="gridloop evaluation: scores", version="0.1.0")
    app.state.scores, app.state.credentials = store, credentials
    app.include_router(router)
    app.include_router(screen.router)
    install_error_handlers(app)
    harden(app, "evaluation", limits or HttpLimits())
    add_ops_routes(app)
    return app
