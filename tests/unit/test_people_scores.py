"""漏报率 and self-handling (自处置) on a hand-built month (tests/people_story.py), per grid,
supervisor and street, and that self-handled cases are in no filing, dispatch or handling
figure; the weights of evaluation.yaml validated."""

from __future__ import annotations

import pytest

from gridloop.citypack.evaluation import DEFAULT_WEIGHTS, EvaluationFile, EvaluationPolicy, check
from gridloop.scoring import Indicator, Level, PeriodKind
from services.evaluation.facts import CaseFacts, fold
from services.evaluation.indicators import count, entities
from services.evaluation.scores import score
from tests.evaluation_story import GRID, OTHER_GRID
from tests.people_story import SUP3_SCORE, people_stories

Ind = Indicator


@pytest.fixture(scope="module")
def cases() -> list[CaseFacts]:
    return [fold(s.case_id, s.events) for s in people_stories("P")]


def _of(level: Level, entity: str, cases: list[CaseFacts]) -> list[CaseFacts]:
    return [c for c in cases if entity in entities(c, level)]


def figures(level: Level, entity: str, cases: list[CaseFacts]) -> dict[Ind, tuple[str, str]]:
    counted = count(level, entity, _of(level, entity, cases))
    return {i: (_short(c.numerator), _short(c.denominator)) for i, c in counted.items()}


def _short(ids: list[str]) -> str:
    return " ".join(i.removeprefix("P-") for i in ids)


def test_a_supervisors_missed_reports_and_self_handling(cases: list[CaseFacts]) -> None:
    found = figures(Level.supervisor, "sup-3", cases)
    assert found[Ind.missed_reports] == ("A E", "A B E")
    assert found[Ind.self_handled] == ("D", "B D")
    assert found[Ind.filing_rate] == ("B", "B")
    assert found[Ind.on_time_verification] == ("A C", "A C")
    assert found[Ind.on_time_check] == ("", "")
    # E counts for sup-3 though the centre filed it before it was verified: a case of its
    # grid the public found first.
    assert "sup-3" in entities(next(c for c in cases if c.case_id == "P-E"), Level.supervisor)
    # sup-7 found F on patrol in its own grid: nothing missed there.
    assert figures(Level.supervisor, "sup-7", cases)[Ind.missed_reports] == ("", "F")
    # A grid manager's self-handling is the grid's, no supervisor's.
    assert all(entities(c, Level.supervisor) == [] for c in cases if c.case_id == "P-G")


def test_per_grid_and_street(cases: list[CaseFacts]) -> None:
    grid = figures(Level.grid, GRID, cases)
    assert grid[Ind.missed_reports] == ("A E", "A B E")
    assert grid[Ind.self_handled] == ("D G", "B D G")
    other = figures(Level.grid, OTHER_GRID, cases)
    assert other[Ind.missed_reports] == ("", "F") and other[Ind.self_handled] == ("", "F")
    street = figures(Level.street, "001", cases)
    assert street[Ind.self_handled] == ("D G", "B D G")


def test_self_handled_cases_are_in_no_filing_dispatch_or_handling_figure(
    cases: list[CaseFacts],
) -> None:
    street = figures(Level.street, "001", cases)
    for indicator in (Ind.filing_rate, Ind.supervisor_share, Ind.closure, Ind.dispatch_accuracy):
        assert "D" not in street[indicator][1].split() and "G" not in street[indicator][1].split()
    assert street[Ind.filing_rate] == ("A B E", "A B C E")
    assert street[Ind.on_time_handling] == ("", "")
    handled = [c for c in cases if c.self_handled]
    assert [c.case_id for c in handled] == ["P-D", "P-G"]
    for case in handled:
        assert entities(case, Level.command_centre) == []
        assert entities(case, Level.operator) == [] and not case.filed


def test_the_supervisors_composite_by_the_packs_weights(cases: list[CaseFacts]) -> None:
    mine = _of(Level.supervisor, "sup-3", cases)
    found = score(
        Level.supervisor, "sup-3", "sup-3", "2026-11", PeriodKind.month, mine, EvaluationPolicy()
    )
    assert (found.score, found.grade) == (SUP3_SCORE, "B")
    assert found.cases == 5  # A B C D E
    # Without the weight of 漏报率 the same month scores 100 (it is what lowers it).
    weights = {Level.supervisor: {Ind.filing_rate: 40.0, Ind.on_time_verification: 30.0}}
    policy = EvaluationPolicy(EvaluationFile(format="gridloop-evaluation/1", weights=weights))
    plain = score(Level.supervisor, "sup-3", "sup-3", "2026-11", PeriodKind.month, mine, policy)
    assert plain.score == 100.0


def test_weights_of_the_new_indicators_are_validated() -> None:
    assert DEFAULT_WEIGHTS[Level.supervisor][Ind.missed_reports] == 20.0
    ok = EvaluationFile.model_validate(
        {"format": "gridloop-evaluation/1", "weights": {"supervisor": {"missed_reports": 50}}}
    )
    assert check(ok) == []
    wrong = EvaluationFile.model_validate(
        {"format": "gridloop-evaluation/1", "weights": {"department": {"missed_reports": 5}}}
    )
    errors = check(wrong)
    assert any("weights.department.missed_reports" in e and "supervisor" in e for e in errors)
    with pytest.raises(ValueError, match="missed_reports"):
        EvaluationFile.model_validate(
            {"format": "gridloop-evaluation/1", "weights": {"supervisor": {"missed_reports": -1}}}
        )
