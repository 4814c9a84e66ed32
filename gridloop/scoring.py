"""What evaluation (综合评价) publishes: scores of an entity over a period. Pure.

The shared contract between the scores processor (writes), its HTTP API and CLI (read,
drill down), the monthly report and the big screen (render). It is in the kernel because
the city pack validates its `evaluation.yaml` against it (levels, indicators, `APPLIES`).
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field


class Level(StrEnum):
    """Whom a score rates."""

    department = "department"
    street = "street"
    community = "community"
    grid = "grid"
    supervisor = "supervisor"
    command_centre = "command_centre"  # 指挥中心: sla.yaml's `centres.command`
    district = "district"  # 区: the pack's district (the grid code's first 6 digits)
    # The centres' own staff, per person (the signed-in person, else the actor's id):
    operator = "operator"  # 受理员: a supervision-centre operator who files or voids
    dispatcher = "dispatcher"  # 派遣员: a command-centre dispatcher who dispatches by hand
    shift_lead = "shift_lead"  # 值班长: who decides departments' requests
    # The grid's people (issue 17), computed when read (services/evaluation/people.py):
    grid_staff = "grid_staff"  # 网格员: a grid manager or team member, per staff id
    grid_team = "grid_team"  # 组团式服务 100 分制: a grid and its service team, per grid code


class PeriodKind(StrEnum):
    day = "day"  # 2026-11-29
    week = "week"  # 2026-W48 (ISO week)
    month = "month"  # 2026-11


class Indicator(StrEnum):
    """The objective indicators (design.md §2 "Evaluation")."""

    filing_rate = "filing_rate"  # 立案率 filed / reported
    dispatch_accuracy = "dispatch_accuracy"  # 准确派遣率 (dispatched − returned) / dispatched
    on_time_handling = "on_time_handling"  # 按期处置率 handled in time / due to be handled
    closure = "closure"  # 结案率 closed / filed
    on_time_closure = "on_time_closure"  # 按期结案率 closed in time / due
    rework = "rework"  # 返工率 reworked / handled (lower is better)
    supervisor_share = "supervisor_share"  # 监督员上报率 supervisor-found / filed
    response = "response"  # 响应率 (hotline style)
    resolution = "resolution"  # 解决率
    satisfaction = "satisfaction"  # 满意率
    on_time_dispatch = "on_time_dispatch"  # 按时派遣率 dispatched in time / dispatches due
    on_time_verification = "on_time_verification"  # 按时核实率 verified in time / due
    on_time_check = "on_time_check"  # 按时核查率 checked on site in time / due
    urge_replies = "urge_replies"  # 督办按时回复率 urges answered in time / urges due
    # The hotline's three rates (12345 接诉即办), from valid callbacks (回访) after closure:
    callback_response = "callback_response"  # 响应率 the unit contacted the resident
    callback_resolution = "callback_resolution"  # 解决率 the resident says it is solved
    callback_satisfaction = "callback_satisfaction"  # 满意率 satisfied or basically satisfied
    # 直接答复率: consultations answered from the knowledge base / public reports decided at
    # intake (answered, filed or voided); counted apart: no default weight, never dispatched.
    answered_directly = "answered_directly"
    on_time_filing = "on_time_filing"  # 按时立案率 filed or voided in time / decided (operator)
    on_time_approval = "on_time_approval"  # 按时审批率 requests decided in time / decided
    # 矛盾纠纷本级化解率: disputes closed at this place's tier / disputes that reached its tier
    # and were closed (grid, community, street, district); no default weight: counted apart.
    disputes_solved_here = "disputes_solved_here"
    # 漏报率: filed cases of the grid first reported by the public / filed cases there (lower
    # is better: what the grid's supervisor did not find on patrol).
    missed_reports = "missed_reports"
    # 自处置率: problems the grid's people fixed on the spot / their reports decided (fixed,
    # filed or voided); counted apart: no default weight, never filed or dispatched.
    self_handled = "self_handled"
    # 走访覆盖率: households visited / households to visit (not vacant) in the period; its
    # drill-down lists household ids, not case ids (the grid service's register).
    visit_coverage = "visit_coverage"
    # 按时调解率 (the grid tier): disputes the grid closed or passed up before its `mediate`
    # clock broke / disputes whose grid tier is done or late.
    on_time_mediation = "on_time_mediation"


class Ratio(BaseModel):
    """One indicator: how many cases counted over how many could; `value` is None when
    nothing could (no cases due), which is not the same as 0 %."""

    numerator: int = Field(ge=0)
    denominator: int = Field(ge=0)

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


class Score(BaseModel):
    """An entity's indicators and composite 100-point score over one period."""

    level: Level
    entity: str  # department, command centre, street, community or grid code; supervisor id
    name: str  # display name from the city pack (the code when it has none)
    period: str  # "2026-11-29", "2026-W48" or "2026-11"
    period_kind: PeriodKind
    cases: int = Field(ge=0)  # cases the period counted for this entity
    indicators: dict[Indicator, Ratio]
    score: float | None  # 0–100, weights from the city pack; None when no indicator applies
    grade: str | None  # A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, else E (bands from the city pack)
    # The hotline's composite (12345 style) of the three callback rates, 0–100, weighted by
    # the pack's `hotline` weights; None without a valid callback.
    hotline: float | None = None


# The staff's own: a place is not rated on them (a person is, on their own decisions).
_STAFF_ONLY = frozenset(
    {
        Indicator.on_time_filing,
        Indicator.on_time_approval,
        Indicator.visit_coverage,  # the grid's people's levels only (read, not stored)
        Indicator.on_time_mediation,
    }
)
_ALL = tuple(i for i in Indicator if i not in _STAFF_ONLY)
HOTLINE = (
    Indicator.callback_response,
    Indicator.callback_resolution,
    Indicator.callback_satisfaction,
)
# Which indicators rate which level: each actor on its own work (docs/evaluation.md gives
# the reason for each). A department on handling what it was sent, not on the dispatch
# (a rightful return is no fault of its own); the command centre on dispatching right and
# in time; a supervisor on the validity of its reports and the timeliness of its
# verifications and on-site checks, not on the departments' closures. A place (street,
# community, grid) on the whole loop within it.
APPLIES: dict[Level, tuple[Indicator, ...]] = {
    Level.department: (
        Indicator.on_time_handling,
        Indicator.closure,
        Indicator.on_time_closure,
        Indicator.rework,
        Indicator.response,
        Indicator.resolution,
        Indicator.satisfaction,
        Indicator.urge_replies,
        *HOTLINE,
    ),
    Level.command_centre: (Indicator.dispatch_accuracy, Indicator.on_time_dispatch),
    Level.street: _ALL,
    Level.community: _ALL,
    Level.grid: _ALL,
    Level.district: _ALL,
    Level.supervisor: (
        Indicator.filing_rate,
        Indicator.on_time_verification,
        Indicator.on_time_check,
        Indicator.missed_reports,  # 漏报率: of the cases of their grid (issue 17)
        Indicator.self_handled,  # 自处置: counted apart
    ),
    # The centre's own staff, each on their own decisions (issue 18).
    Level.operator: (Indicator.on_time_filing,),
    Level.dispatcher: (Indicator.dispatch_accuracy,),
    Level.shift_lead: (Indicator.on_time_approval,),
    # The grid's people (issue 17 item 7): a grid staff member on their own visits and the
    # disputes of the grids they work; Zhoushan's team (组团) per grid on those and the
    # grid's own finding, self-handling and verification.
    Level.grid_staff: (
        Indicator.visit_coverage,
        Indicator.disputes_solved_here,
        Indicator.on_time_mediation,
    ),
    Level.grid_team: (
        Indicator.visit_coverage,
        Indicator.disputes_solved_here,
        Indicator.on_time_mediation,
        Indicator.missed_reports,
        Indicator.self_handled,
        Indicator.on_time_verification,
    ),
}
# Levels scored when read, from the stored case facts and the grid service's register and
# visit log (services/evaluation/people.py), never stored in `scores`.
ON_READ = frozenset({Level.grid_staff, Level.grid_team})
LOWER_IS_BETTER = frozenset({Indicator.rework, Indicator.missed_reports})


class BadPeriod(ValueError):
    """A period that is none of `2026-11-29`, `2026-W48`, `2026-11`."""


_SHAPES = (
    (re.compile(r"\d{4}-\d{2}-\d{2}"), PeriodKind.day),
    (re.compile(r"\d{4}-W\d{2}"), PeriodKind.week),
    (re.compile(r"\d{4}-\d{2}"), PeriodKind.month),
)


def period_kind(period: str) -> PeriodKind:
    """Which kind of period `period` names; BadPeriod (saying why) when none."""
    kind = next((k for shape, k in _SHAPES if shape.fullmatch(period)), None)
    if kind is None:
        raise BadPeriod(f"{period[:20]!r} is not a period: use 2026-11-29, 2026-W48 or 2026-11")
    try:
        if kind is PeriodKind.week:
            date.fromisocalendar(int(period[:4]), int(period[6:]), 1)
        else:
            date.fromisoformat(period if kind is PeriodKind.day else period + "-01")
    except ValueError as exc:
        raise BadPeriod(f"{period!r} is not a real {kind.value}: {exc}") from exc
    return kind
