"""The hotline's three rates (12345) without any server: which callback a case counts, for
whom, the composite from the pack's weights, the ranking, and the pack's validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gridloop.citypack import load_city_pack
from gridloop.citypack.evaluation import EvaluationFile, EvaluationPolicy, HotlineWeights, check
from gridloop.config import DEMO_CITY_PACK
from gridloop.scoring import HOTLINE, Indicator, Level, PeriodKind, Ratio, Score
from schemas.envelope import Envelope
from schemas.events import Actor, CallbackAnswered, CallbackUnreached, Role
from services.evaluation.facts import fold
from services.evaluation.hotline import ranking
from services.evaluation.indicators import count
from services.evaluation.report.model import Period, build
from services.evaluation.report.tables import tables
from services.evaluation.scores import composite
from services.evaluation.screen import district_figures
from tests.evaluation_story import Story

OPERATOR = Actor(role=Role.hotline, id="op-1")


def answer(story: Story, contacted: bool, solved: bool, satisfaction: str) -> Story:
    data = CallbackAnswered.model_validate(
        {
            "case_id": story.case_id,
            "case_version": story.version,
            "actor": OPERATOR,
            "contacted": contacted,
            "solved": solved,
            "satisfaction": satisfaction,
        }
    )
    story.events.append(Envelope(data, "/tests", story.at))
    return story


def unreached(story: Story, attempt: int, invalid: bool = False) -> Story:
    data = CallbackUnreached(
        case_id=story.case_id,
        case_version=story.version,
        actor=OPERATOR,
        attempt=attempt,
        invalid=invalid,
    )
    story.events.append(Envelope(data, "/tests", story.at))
    return story


def test_the_latest_closures_answer_counts_and_an_invalid_callback_none() -> None:
    story = Story("C-1").reported("hotline").filed().dispatched("WATER").done()
    answer(story, False, False, "dissatisfied").feedback(1).rework()
    story.dispatched().done()  # SANITATION this time
    answer(story, True, True, "basically_satisfied")
    facts = fold("C-1", reversed(story.events))  # any order
    assert facts.callback is not None
    assert (facts.callback.department, facts.callback.satisfaction) == (
        "SANITATION",
        "basically_satisfied",
    )
    counted = count(Level.street, "001", [facts])
    assert {i: counted[i].ratio for i in HOTLINE} == dict.fromkeys(
        HOTLINE, Ratio(numerator=1, denominator=1)
    )
    # The callback is about SANITATION's handling, not WATER's.
    water = count(Level.department, "WATER", [facts])
    assert all(water[i].ratio.denominator == 0 for i in HOTLINE)

    invalid = Story("C-2").reported("hotline").filed().dispatched().done()
    unreached(unreached(unreached(invalid, 1), 2), 3, invalid=True)
    facts = fold("C-2", invalid.events)
    assert (facts.callback, facts.invalid_callbacks) == (None, 1)
    assert all(count(Level.street, "001", [facts])[i].ratio.denominator == 0 for i in HOTLINE)


def test_basically_satisfied_counts_as_satisfied_and_unsolved_as_unsolved() -> None:
    cases = []
    for n, (contacted, solved, satisfaction) in enumerate(
        [
            (True, True, "satisfied"),
            (True, False, "basically_satisfied"),
            (False, False, "dissatisfied"),
        ]
    ):
        story = Story(f"C-{n}").reported("hotline").filed().dispatched().done()
        cases.append(fold(story.case_id, answer(story, contacted, solved, satisfaction).events))
    counted = count(Level.district, "110101", cases)
    ratios = {i: counted[i].ratio for i in HOTLINE}
    assert ratios == {
        Indicator.callback_response: Ratio(numerator=2, denominator=3),
        Indicator.callback_resolution: Ratio(numerator=1, denominator=3),
        Indicator.callback_satisfaction: Ratio(numerator=2, denominator=3),
    }
    assert counted[Indicator.callback_satisfaction].numerator == ["C-0", "C-1"]
    # 10 / 50 / 40 by default: 100 × (0.1·2/3 + 0.5·1/3 + 0.4·2/3) = 50.0
    assert composite(ratios, EvaluationPolicy().hotline) == 50.0
    weights = HotlineWeights(response=30, resolution=35, satisfaction=35).of()
    assert composite(ratios, weights) == round(100 * (0.3 * 2 / 3 + 0.35 / 3 + 0.35 * 2 / 3), 2)


def _score(entity: str, hotline: float | None) -> Score:
    return Score(
        level=Level.street,
        entity=entity,
        name=entity,
        period="2026-11",
        period_kind=PeriodKind.month,
        cases=1,
        indicators={},
        score=None,
        grade=None,
        hotline=hotline,
    )


def test_the_ranking_shares_ties_and_leaves_out_who_had_no_callback() -> None:
    rows = ranking(
        [_score("003", 80.0), _score("001", 90.0), _score("002", 80.0), _score("9", None)]
    )
    assert [(r.rank, r.entity) for r in rows] == [(1, "001"), (2, "002"), (2, "003")]


@pytest.mark.parametrize("weights", [{"response": 0, "resolution": 0, "satisfaction": 0}])
def test_hotline_weights_need_a_positive_one(weights: dict[str, int]) -> None:
    file = EvaluationFile.model_validate({"format": "gridloop-evaluation/1", "hotline": weights})
    assert check(file) == ["evaluation.yaml: hotline: needs a positive weight"]


def test_a_negative_hotline_weight_is_a_shape_error() -> None:
    with pytest.raises(ValueError, match=r"hotline\.response"):
        EvaluationFile.model_validate(
            {"format": "gridloop-evaluation/1", "hotline": {"response": -1}}
        )


def _rated(entity: str, level: Level, rates: tuple[int, int, int], of: int) -> Score:
    ratios = {i: Ratio(numerator=n, denominator=of) for i, n in zip(HOTLINE, rates, strict=True)}
    hotline = composite(ratios, EvaluationPolicy().hotline)
    return _score(entity, hotline).model_copy(
        update={"level": level, "indicators": ratios, "name": f"name {entity}"}
    )


def test_the_monthly_report_and_the_big_screen_show_the_rates() -> None:
    pack = load_city_pack(DEMO_CITY_PACK)
    period = Period.parse("2026-11", pack.city.timezone)
    streets = [_rated("001", Level.street, (2, 1, 1), 2), _rated("002", Level.street, (1, 1, 1), 1)]
    departments = [_rated("WATER", Level.department, (3, 3, 2), 3)]
    report = build([], departments, streets, pack, period, datetime(2026, 12, 1, tzinfo=UTC))
    [table] = [t for t in tables(report) if t.slug == "hotline_ranking"]
    assert [row[:5] for row in table.rows] == [
        ("street", 1, "002", "name 002", 1),
        ("street", 2, "001", "name 001", 2),
        ("department", 1, "WATER", "name WATER", 3),
    ]
    assert table.rows[1][5:] == ("100.0%", "50.0%", "50.0%", 55.0)
    figures = district_figures(streets, HOTLINE)
    assert [(f.indicator, f.numerator, f.denominator) for f in figures] == [
        (Indicator.callback_response, 3, 3),
        (Indicator.callback_resolution, 2, 3),
        (Indicator.callback_satisfaction, 2, 3),
    ]
