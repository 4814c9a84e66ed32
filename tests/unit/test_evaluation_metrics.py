"""The Prometheus gauges: departments and streets of the current month only (bounded
labels), removed when a score disappears; API periods validated."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from gridloop.scoring import (
    BadPeriod,
    Indicator,
    Level,
    PeriodKind,
    Ratio,
    Score,
    period_kind,
)
from services.evaluation.main import gauge
from services.evaluation.store import Key


def scored(level: Level, entity: str, value: float) -> Score:
    return Score(
        level=level,
        entity=entity,
        name=entity,
        period="2031-04",
        period_kind=PeriodKind.month,
        cases=2,
        indicators={Indicator.closure: Ratio(numerator=1, denominator=2)},
        score=value,
        grade="E",
    )


def shown(level: str, entity: str) -> float | None:
    return REGISTRY.get_sample_value(
        "gridloop_evaluation_score", {"level": level, "entity": entity}
    )


def test_a_department_of_this_month_is_gauged_and_removed() -> None:
    key = Key(Level.department, "GAUGED-1", PeriodKind.month, "2031-04")
    gauge(key, scored(Level.department, "GAUGED-1", 50.0), "2031-04")
    assert shown("department", "GAUGED-1") == 50.0
    ratio = REGISTRY.get_sample_value(
        "gridloop_evaluation_indicator_ratio",
        {"level": "department", "entity": "GAUGED-1", "indicator": "closure"},
    )
    assert ratio == 0.5
    gauge(key, None, "2031-04")
    assert shown("department", "GAUGED-1") is None
    labels = {"level": "department", "entity": "GAUGED-1", "indicator": "closure"}
    assert REGISTRY.get_sample_value("gridloop_evaluation_indicator_ratio", labels) is None


@pytest.mark.parametrize(
    "key",
    [
        Key(Level.grid, "110101001002001", PeriodKind.month, "2031-04"),  # unbounded
        Key(Level.supervisor, "sup-1", PeriodKind.month, "2031-04"),
        Key(Level.street, "009", PeriodKind.day, "2031-04-01"),  # not a month
        Key(Level.street, "009", PeriodKind.month, "2031-03"),  # not this month
    ],
)
def test_other_scores_are_not_gauged(key: Key) -> None:
    gauge(key, scored(key.level, key.entity, 10.0), "2031-04")
    assert shown(key.level.value, key.entity) is None


@pytest.mark.parametrize(
    ("period", "kind"),
    [("2026-11-29", PeriodKind.day), ("2026-W48", PeriodKind.week), ("2026-11", PeriodKind.month)],
)
def test_periods(period: str, kind: PeriodKind) -> None:
    assert period_kind(period) is kind


@pytest.mark.parametrize(
    "period", ["2026-13", "2026-02-30", "2026-W54", "2026-W48-1", "2026-11\n", "x"]
)
def test_bad_periods(period: str) -> None:
    with pytest.raises(BadPeriod):
        period_kind(period)
