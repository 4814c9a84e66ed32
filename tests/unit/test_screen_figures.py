"""The big screen's district figures: the streets' ratios added up."""

from __future__ import annotations

from gridloop.scoring import Indicator, Level, PeriodKind, Ratio, Score
from services.evaluation.screen import SHOWN, district_figures


def street(code: str, ratios: dict[Indicator, tuple[int, int]]) -> Score:
    return Score(
        level=Level.street,
        entity=code,
        name=code,
        period="2026-11",
        period_kind=PeriodKind.month,
        cases=5,
        indicators={i: Ratio(numerator=n, denominator=d) for i, (n, d) in ratios.items()},
        score=80.0,
        grade="B",
    )


def test_the_district_figure_is_the_sum_of_its_streets_not_their_average() -> None:
    figures = {
        f.indicator: f
        for f in district_figures(
            [
                street("001", {Indicator.closure: (9, 10), Indicator.on_time_handling: (0, 0)}),
                street("002", {Indicator.closure: (1, 90)}),
            ]
        )
    }
    assert [*figures] == list(SHOWN)
    closure = figures[Indicator.closure]
    assert (closure.numerator, closure.denominator) == (10, 100)
    assert closure.value == 0.1  # the average of 90 % and 1.1 % would say 45.6 %
    assert figures[Indicator.on_time_handling].value is None  # nothing was due: no figure
    assert figures[Indicator.satisfaction].denominator == 0
