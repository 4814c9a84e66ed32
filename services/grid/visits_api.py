"""Visits (走访), the routes:

- `POST /grids/{grid}/visits` (`Idempotency-Key`): log a visit; `GET /grids/{grid}/visits`,
  `GET /visits/{id}`: the log
- `POST /visits/{id}/findings/{index}/case`: a finding becomes a case (or a dispute)
- `GET /grids/{grid}/coverage?period=2026-12`: households visited ÷ households

Who: visits to the grid's own staff (who log them and make findings cases), the supervision
and command centres and admin; coverage also to the shift lead (`visits.py`). The register's
routes are `households_api.py`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gridloop.auth import Principal, Role, require
from gridloop.errors import refusals
from schemas.events import HouseholdId
from schemas.limits import Latitude, Longitude
from services.grid.coverage import Coverage, period_of
from services.grid.households import COVERAGE_READERS
from services.grid.households_api import ACT, READ, GridCode, Reader
from services.grid.visiting import Finding, FindingType, LogVisit, ReportFinding
from services.grid.visits import Asked, Visits, visit_id, visit_out

router = APIRouter(tags=["households and visits"])
VisitRef = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
GridStaff = Annotated[Principal, Depends(require(Role.grid_staff))]
CoverageReader = Annotated[Principal, Depends(require(Role.grid_staff, *COVERAGE_READERS))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
Period = Annotated[str, Query(max_length=20, description="2026-12, 2026-Q4 or 2026")]


def _visits(request: Request) -> Visits:
    visits: Visits = request.app.state.visits
    return visits


Service = Annotated[Visits, Depends(_visits)]


# --- visits -----------------------------------------------------------------------------------


class FindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: FindingType
    text: Annotated[str, Field(min_length=1, max_length=500)]
    household: HouseholdId | None = None  # the household it concerns, one visited


class VisitIn(BaseModel):
    """A visit: when it was made (a handheld offline sends it later) and to which doors."""

    model_config = ConfigDict(extra="forbid")
    at: AwareDatetime
    households: Annotated[list[HouseholdId], Field(min_length=1, max_length=200)]
    findings: Annotated[list[FindingIn], Field(max_length=20)] = []


@router.post("/grids/{grid}/visits", status_code=202, responses=ACT | refusals(422))
async def log_visit(
    who: GridStaff, service: Service, grid: GridCode, visit: VisitIn, key: IdempotencyKey = None
) -> JSONResponse:
    """Log a visit (走访); sent again under the same `Idempotency-Key`, the same answer."""
    findings = tuple(Finding(f.type, f.text, f.household) for f in visit.findings)
    command = LogVisit(visit_id(who, key), grid, who, visit.at, tuple(visit.households), findings)
    logged = await service.log(command, Asked(key, f"{grid}\n{visit.model_dump_json()}"))
    return _answer(visit_out(logged), 202)


@router.get("/grids/{grid}/visits", responses=READ | refusals(422))
async def grid_visits(
    who: Reader, service: Service, grid: GridCode, period: Period
) -> JSONResponse:
    """The grid's visits made in the period, the latest first (500 at most)."""
    span = period_of(period, service.pack.city.timezone)
    found = await service.visits(who, grid, span.start, span.end)
    return _answer([visit_out(v) for v in found], 200)


@router.get("/visits/{visit}", responses=READ)
async def one_visit(who: Reader, service: Service, visit: VisitRef) -> JSONResponse:
    return _answer(visit_out(await service.visit(who, visit)), 200)


class PointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lon: Longitude
    lat: Latitude


class CaseIn(BaseModel):
    """Where the finding is (the handheld's GPS) and, for an ordinary case, its class."""

    model_config = ConfigDict(extra="forbid")
    point: PointIn
    kind: Annotated[str | None, Field(pattern=r"^(component|event|dispute)$")] = None
    class_code: Annotated[str | None, Field(pattern=r"^\d{4,5}$")] = None
    urgency: Annotated[str | None, Field(max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")] = None


@router.post(
    "/visits/{visit}/findings/{index}/case", status_code=202, responses=ACT | refusals(422)
)
async def finding_case(
    request: Request,
    who: GridStaff,
    service: Service,
    visit: VisitRef,
    index: Annotated[int, Path(ge=0, le=19)],
    case: CaseIn,
) -> JSONResponse:
    """The finding becomes a case (a dispute for a dispute finding) in one action: reported
    to intake with the grid person's credential, the case recorded on the finding. Asked
    again, the same case."""
    token = request.headers["Authorization"].partition(" ")[2]
    ask = ReportFinding(
        visit, index, who, case.point.lon, case.point.lat, case.kind, case.class_code, case.urgency
    )
    after = await service.report(ask, token)
    finding = after.findings[index]
    body = {"case_id": finding.case_id, "kind": finding.kind, "visit": visit_out(after)}
    return _answer(body, 202)


# --- coverage ---------------------------------------------------------------------------------


class CoverageOut(BaseModel):
    """走访覆盖率: households visited ÷ households (vacant doors left out) in the period."""

    grid: str
    period: str
    households: int
    visited: int
    ratio: float | None  # null: no households to visit
    unvisited: list[str]

    @classmethod
    def of(cls, c: Coverage) -> CoverageOut:
        return cls(
            grid=c.grid,
            period=c.period,
            households=c.households,
            visited=c.visited,
            ratio=c.ratio,
            unvisited=list(c.unvisited),
        )


@router.get("/grids/{grid}/coverage", responses=READ | refusals(422))
async def grid_coverage(
    who: CoverageReader, service: Service, grid: GridCode, period: Period
) -> CoverageOut:
    """Households visited ÷ households of the grid in the period."""
    return CoverageOut.of(await service.coverage(who, grid, period))


def _answer(body: Any, status: int) -> JSONResponse:
    return JSONResponse(jsonable_encoder(body), status_code=status)
