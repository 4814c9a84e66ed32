"""Scores of the grid's people (issue 17 item 7), worked out when read. Pure.

- **Grid staff** (网格员, `Level.grid_staff`, per staff id): a grid manager or team member
  on the grids the staff register gives them in the period — 走访覆盖率 of their own visits
  (households of their grids they visited ÷ households to visit), 矛盾纠纷本级化解率 of the
  disputes of their grids at the grid tier, and 按时调解率 on the grid tier's `mediate`
  clock.
- **Zhoushan's 100-point scoring** (组团式服务 100 分制考核, `Level.grid_team`, per grid
  code): the grid and its service team — coverage of everyone's visits there, the two
  dispute figures, and what the grid already has: 漏报率 (as 1 − rate), 自处置率, 按时核实率.

Visits are not cases: coverage is counted from the grid service's register and visit log
(`gridloop.visits`, the kernel's read side), the rest from the stored case facts of the
grids, exactly as a grid's score counts them. Neither is stored: both are read at the time
of asking, from what is stored, never from the wall clock, so a rebuild of the facts from
the topics gives the same scores. Weights and grades are the pack's (`evaluation.yaml`
`weights.grid_staff`, `weights.grid_team`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gridloop.citypack.evaluation import EvaluationPolicy
from gridloop.scoring import Indicator, Level, PeriodKind, Score, period_kind
from gridloop.visits import Covered
from services.evaluation.facts import CaseFacts
from services.evaluation.indicators import Counted, count
from services.evaluation.scores import graded


def bounds(period: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a day, ISO week or month in the city's time zone."""
    kind = period_kind(period)
    if kind is PeriodKind.day:
        first = date.fromisoformat(period)
        last = first + timedelta(days=1)
    elif kind is PeriodKind.week:
        first = date.fromisocalendar(int(period[:4]), int(period[6:]), 1)
        last = first + timedelta(days=7)
    else:
        first = date.fromisoformat(period + "-01")
        last = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return _midnight(first, zone), _midnight(last, zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def counted(
    level: Level, entity: str, cases: Iterable[CaseFacts], cover: Covered, policy: EvaluationPolicy
) -> dict[Indicator, Counted]:
    """Every indicator of `level` with what it counted: the cases of the grids (case ids)
    and, for visit coverage, the households (visited / to visit, household ids)."""
    found = count(level, entity, cases, policy.satisfied, policy.approve_within)
    found[Indicator.visit_coverage] = Counted(list(cover.visited), list(cover.due))
    return found


def scored(
    level: Level,
    entity: str,
    name: str,
    period: str,
    cases: list[CaseFacts],
    cover: Covered,
    policy: EvaluationPolicy,
) -> Score | None:
    """The score of one grid staff member or grid team; None with neither a case counted
    nor a household to visit in the period (nothing to score). `cases` are the cases of
    their grids; `Score.cases` counts those a figure counted."""
    figures = counted(level, entity, cases, cover, policy)
    # The cases some figure counted (a grid staff member's: the disputes of their grids).
    number = len(
        {
            case
            for i, tally in figures.items()
            if i is not Indicator.visit_coverage
            for case in tally.denominator
        }
    )
    if not number and not cover.due:
        return None
    ratios = {indicator: tally.ratio for indicator, tally in figures.items()}
    return graded(level, entity, name, period, period_kind(period), number, ratios, policy)
