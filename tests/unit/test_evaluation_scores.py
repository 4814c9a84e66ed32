"""The composite 100-point score and its grade: weights renormalised over the indicators
that applied, rework counted the right way round, and the pack's `evaluation.yaml`
(defaults when absent, every error listed when invalid)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from gridloop.citypack import CityPackError, load_city_pack
from gridloop.citypack.evaluation import DEFAULT_WEIGHTS, EvaluationFile, EvaluationPolicy
from gridloop.citypack.generate.write import write_evaluation
from gridloop.config import DEMO_CITY_PACK
from gridloop.scoring import Indicator, Level, PeriodKind, Ratio
from services.evaluation.facts import fold
from services.evaluation.scores import composite, score
from tests.evaluation_story import Story

Ind = Indicator


def test_weights_are_renormalised_over_the_indicators_that_applied() -> None:
    weights = {Ind.closure: 30.0, Ind.on_time_handling: 10.0, Ind.satisfaction: 60.0}
    ratios = {
        Ind.closure: Ratio(numerator=1, denominator=2),  # 50 %
        Ind.on_time_handling: Ratio(numerator=1, denominator=1),  # 100 %
        Ind.satisfaction: Ratio(numerator=0, denominator=0),  # nobody rated: drops out
    }
    assert composite(ratios, weights) == pytest.approx(100 * (30 * 0.5 + 10 * 1.0) / 40)


def test_rework_is_better_lower() -> None:
    weights = {Ind.rework: 1.0}
    assert composite({Ind.rework: Ratio(numerator=1, denominator=4)}, weights) == 75.0
    assert composite({Ind.rework: Ratio(numerator=0, denominator=4)}, weights) == 100.0


def test_no_applicable_indicator_gives_no_score() -> None:
    ratios = {
        Ind.closure: Ratio(numerator=0, denominator=0),
        Ind.rework: Ratio(numerator=1, denominator=1),
    }
    assert composite(ratios, {Ind.closure: 1.0}) is None  # rework weighs nothing here


@pytest.mark.parametrize(
    ("value", "grade"),
    [(100, "A"), (90, "A"), (89.99, "B"), (75, "B"), (60, "C"), (40, "D"), (39.99, "E"), (0, "E")],
)
def test_grade_bands(value: float, grade: str) -> None:
    assert EvaluationPolicy().grade(value) == grade


def test_a_street_scored_from_its_cases() -> None:
    perfect = Story("A").reported().filed().dispatched().acknowledged().done(rating=5)
    late = Story("B").reported().filed().dispatched().breach().done(rating=2)
    cases = [fold(s.case_id, s.events) for s in (perfect, late)]
    found = score(
        Level.street, "001", "东华门", "2026-11", PeriodKind.month, cases, EvaluationPolicy()
    )
    assert found.cases == 2 and found.indicators[Ind.on_time_handling] == Ratio(
        numerator=1, denominator=2
    )
    w = DEFAULT_WEIGHTS[Level.street]
    # filing, dispatch, closure, supervisor share, response, resolution: 100 %; on-time
    # handling, on-time closure, satisfaction: 50 %; rework: 0 % reworked → 100 %.
    half = w[Ind.on_time_handling] + w[Ind.on_time_closure] + w[Ind.satisfaction]
    expected = round(100 * (sum(w.values()) - half / 2) / sum(w.values()), 2)
    assert found.score == expected and found.grade == "B"


# --- evaluation.yaml -----------------------------------------------------------------------------


def pack_with(tmp_path: Path, document: object | None) -> Path:
    root = tmp_path / "pack"
    shutil.copytree(DEMO_CITY_PACK, root)
    target = root / "evaluation.yaml"
    if document is None:
        target.unlink()
    else:
        target.write_text(yaml.safe_dump(document), encoding="utf-8")
    return root


def test_the_demo_pack_spells_out_the_defaults() -> None:
    policy = load_city_pack(DEMO_CITY_PACK).evaluation
    assert {level: policy.weights(level) for level in Level} == DEFAULT_WEIGHTS


def test_a_pack_without_the_file_gets_the_defaults(tmp_path: Path) -> None:
    policy = load_city_pack(pack_with(tmp_path, None)).evaluation
    assert policy.weights(Level.grid) == DEFAULT_WEIGHTS[Level.grid] and policy.grade(80) == "B"


def test_a_level_named_replaces_its_weights_only(tmp_path: Path) -> None:
    document = {"format": "gridloop-evaluation/1", "weights": {"street": {"closure": 1}}}
    policy = load_city_pack(pack_with(tmp_path, document)).evaluation
    assert policy.weights(Level.street) == {Ind.closure: 1.0}
    assert policy.weights(Level.department) == DEFAULT_WEIGHTS[Level.department]


def test_every_error_is_listed(tmp_path: Path) -> None:
    document = {
        "format": "gridloop-evaluation/1",
        "grades": [{"grade": "A", "min": 60}, {"grade": "B", "min": 80}, {"grade": "E", "min": 5}],
        "weights": {
            "department": {"filing_rate": 5, "closure": 0},
            "supervisor": {"filing_rate": 1},
        },
    }
    with pytest.raises(CityPackError) as caught:
        load_city_pack(pack_with(tmp_path, document))
    assert caught.value.errors == [
        "evaluation.yaml: grades: minimums must strictly decrease",
        "evaluation.yaml: grades: each grade once (with `lowest`)",
        "evaluation.yaml: weights.department.filing_rate: a department is not rated on "
        "filing_rate (rated: supervisor)",
        "evaluation.yaml: weights.department: needs a positive weight",
    ]


def test_weights_from_before_issue_19_are_refused_saying_who_is_rated(tmp_path: Path) -> None:
    """Dispatch accuracy moved to the command centre, closure off the supervisors: a pack
    still weighting them that way is refused, every misplaced weight named."""
    document = {
        "format": "gridloop-evaluation/1",
        "weights": {
            "department": {"dispatch_accuracy": 10, "on_time_handling": 25},
            "supervisor": {"filing_rate": 60, "closure": 20, "on_time_closure": 20},
        },
    }
    with pytest.raises(CityPackError) as caught:
        load_city_pack(pack_with(tmp_path, document))
    assert caught.value.errors == [
        "evaluation.yaml: weights.department.dispatch_accuracy: a department is not rated on "
        "dispatch_accuracy (rated: command_centre, dispatcher)",
        "evaluation.yaml: weights.supervisor.closure: a supervisor is not rated on closure "
        "(rated: department)",
        "evaluation.yaml: weights.supervisor.on_time_closure: a supervisor is not rated on "
        "on_time_closure (rated: department)",
    ]


def test_shape_errors_are_listed_with_their_place(tmp_path: Path) -> None:
    document = {
        "format": "gridloop-evaluation/9",
        "satisfied": 6,
        "weights": {"mayor": {"closure": 1}, "grid": {"closure": -1, "speed": 1}},
    }
    with pytest.raises(CityPackError) as caught:
        load_city_pack(pack_with(tmp_path, document))
    places = [e.split(": ")[1] for e in caught.value.errors]
    assert places == [
        "format",
        "satisfied",
        "weights.grid.closure",
        "weights.grid.speed.[key]",
        "weights.mayor.[key]",
    ]


def test_the_file_model_round_trips_its_defaults() -> None:
    assert EvaluationFile(format="gridloop-evaluation/1").lowest == "E"


def test_the_generator_writes_a_file_the_loader_reads_as_the_defaults(tmp_path: Path) -> None:
    root = pack_with(tmp_path, None)
    write_evaluation(root / "evaluation.yaml")
    policy = load_city_pack(root).evaluation
    assert {level: policy.weights(level) for level in Level} == DEFAULT_WEIGHTS
    assert [(b.grade, b.min) for b in policy.file.grades] == [
        ("A", 90),
        ("B", 75),
        ("C", 60),
        ("D", 40),
    ]
