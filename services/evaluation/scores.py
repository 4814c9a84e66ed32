"""The composite 100-point score (综合评分) of one entity over one period. Pure.

    score = 100 × Σ wᵢ·vᵢ / Σ wᵢ   over the indicators with a weight > 0 that applied

An indicator applies when its denominator is not 0: an entity with no case due to be
handled is not rated on on-time handling, rather than given 0 % or 100 % for it; the
weights of the indicators that did apply are renormalised to sum to one. No indicator
applying gives no score (None) and no grade. Rework counts as 1 − rate (lower is better).
Scores are rounded to 2 decimals, so a rebuild compares exactly.

The hotline's composite (`Score.hotline`, 12345 style) is the same sum over the three
callback rates alone, with the pack's `hotline` weights (default 10 / 50 / 40).
"""

from __future__ import annotations

from collections.abc import Iterable

from gridloop.citypack.evaluation import EvaluationPolicy
from gridloop.scoring import (
    HOTLINE,
    LOWER_IS_BETTER,
    Indicator,
    Level,
    PeriodKind,
    Ratio,
    Score,
)
from services.evaluation.facts import CaseFacts
from services.evaluation.indicators import count


def composite(ratios: dict[Indicator, Ratio], weights: dict[Indicator, float]) -> float | None:
    total = earned = 0.0
    for indicator, ratio in ratios.items():
        weight, value = weights.get(indicator, 0.0), ratio.value
        if weight <= 0 or value is None:
            continue
        total += weight
        earned += weight * (1 - value if indicator in LOWER_IS_BETTER else value)
    return round(100 * earned / total, 2) if total else None


def score(
    level: Level,
    entity: str,
    name: str,
    period: str,
    kind: PeriodKind,
    cases: Iterable[CaseFacts],
    policy: EvaluationPolicy,
) -> Score:
    """The score of `entity` over the cases it counts in `period`."""
    listed = list(cases)
    counted = count(level, entity, listed, policy.satisfied, policy.approve_within)
    ratios = {indicator: tally.ratio for indicator, tally in counted.items()}
    cases_counted = len({c.case_id for c in listed})
    return graded(level, entity, name, period, kind, cases_counted, ratios, policy)


def graded(
    level: Level,
    entity: str,
    name: str,
    period: str,
    kind: PeriodKind,
    cases: int,
    ratios: dict[Indicator, Ratio],
    policy: EvaluationPolicy,
) -> Score:
    """The score of `entity` over `period` from its indicators' ratios over `cases` cases."""
    total = composite(ratios, policy.weights(level))
    hotline = composite({i: r for i, r in ratios.items() if i in HOTLINE}, policy.hotline)
    return Score(
        level=level,
        entity=entity,
        name=name,
        period=period,
        period_kind=kind,
        cases=cases,
        indicators=ratios,
        score=total,
        grade=policy.grade(total),
        hotline=hotline,
    )
