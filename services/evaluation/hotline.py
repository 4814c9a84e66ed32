"""The hotline's rankings (12345 接诉即办 排名): streets, departments or districts ranked by
the composite of their three callback rates (响应率, 解决率, 满意率; `Score.hotline`), as the
hotline publishes them each month. Pure.

Only entities with at least one valid callback are ranked (no callback, no rate); equal
composites share a rank (1, 1, 3), then the code orders them.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from gridloop.scoring import Indicator, Level, Ratio, Score

RANKED = (Level.street, Level.department, Level.district)


class Ranked(BaseModel):
    """One row of a published ranking."""

    rank: int
    entity: str
    name: str
    hotline: float  # the composite, 0–100 (the pack's `hotline` weights)
    callbacks: int  # valid callbacks counted
    response: Ratio  # 响应率
    resolution: Ratio  # 解决率
    satisfaction: Ratio  # 满意率


def _ratio(score: Score, indicator: Indicator) -> Ratio:
    return score.indicators.get(indicator) or Ratio(numerator=0, denominator=0)


def ranking(scores: Iterable[Score]) -> list[Ranked]:
    """The ranking of `scores` (one level, one period) by their hotline composite."""
    rated = sorted(
        (s for s in scores if s.hotline is not None),
        key=lambda s: (-(s.hotline or 0.0), s.entity),
    )
    rows: list[Ranked] = []
    for n, score in enumerate(rated, 1):
        assert score.hotline is not None
        tied = rows and rows[-1].hotline == score.hotline
        response = _ratio(score, Indicator.callback_response)
        rows.append(
            Ranked(
                rank=rows[-1].rank if tied else n,
                entity=score.entity,
                name=score.name,
                hotline=score.hotline,
                callbacks=response.denominator,
                response=response,
                resolution=_ratio(score, Indicator.callback_resolution),
                satisfaction=_ratio(score, Indicator.callback_satisfaction),
            )
        )
    return rows
