"""The grid's people's scores (issue 17 item 7) on a hand-built month
(tests/grid_people_story.py): a grid staff member's and Zhoushan's team score per grid, by
the pack's weights; evaluation.yaml's weights for them validated."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from gridloop.citypack.evaluation import EvaluationFile, EvaluationPolicy, check
from gridloop.scoring import Indicator, Level
from gridloop.visits import covered, worked
from services.evaluation.facts import CaseFacts, fold
from services.evaluation.people import bounds, counted, scored
from tests.evaluation_story import GRID
from tests.grid_people_story import (
    GM1_SCORE,
    TEAM_SCORE,
    dispute_stories,
    doors,
    spells,
    visits,
)
from tests.people_story import people_stories

Ind = Indicator
ZONE = ZoneInfo("Asia/Shanghai")
START, END = bounds("2026-11", ZONE)


@pytest.fixture(scope="module")
def disputes() -> list[CaseFacts]:
    return [fold(s.case_id, s.events) for s in dispute_stories("Q")]


def _short(ids: list[str]) -> str:
    return " ".join(i.split("-", 1)[1] for i in ids)


def test_the_grid_tiers_clock_on_a_disputes_facts(disputes: list[CaseFacts]) -> None:
    d1, d2, d3 = disputes
    assert (d1.dispute_grid_late, d2.dispute_grid_late, d3.dispute_grid_late) == (
        False,
        True,
        False,
    )
    assert d3.dispute_grid_done_at is not None and d3.dispute_closed_by is None


def test_coverage_counts_doors_to_visit_at_the_periods_end() -> None:
    mine = covered(doors("Q"), visits("Q"), START, END, staff="GM-1")
    assert (_short(list(mine.visited)), _short(list(mine.due))) == ("h1", "h1 h2")
    everyone = covered(doors("Q"), visits("Q"), START, END)
    assert everyone.visited == everyone.due == ("Q-h1", "Q-h2")
    october = covered(doors("Q"), visits("Q"), *bounds("2026-10", ZONE), staff="GM-1")
    assert october.visited == ("Q-h2",) and "Q-h4" in october.due  # h4 left in November


def test_the_grid_staff_are_the_registers_people_but_its_supervisor() -> None:
    assert worked(spells(), START, END) == ["GM-1", "GM-2"]
    assert worked(spells(), START, END, team=True) == ["GM-2"]  # the doctor: a 组团
    assert worked(spells(), *bounds("2025-11", ZONE)) == ["GM-1", "GM-2"]  # from the pack
    ended = [s | {"until": START} for s in spells()]
    assert worked(ended, START, END) == []  # released before the month


def test_a_grid_staff_members_score(disputes: list[CaseFacts]) -> None:
    cover = covered(doors("Q"), visits("Q"), START, END, staff="GM-1")
    policy = EvaluationPolicy()
    figures = counted(Level.grid_staff, "GM-1", disputes, cover, policy)
    found = {i: (_short(c.numerator), _short(c.denominator)) for i, c in figures.items()}
    assert found == {
        Ind.visit_coverage: ("h1", "h1 h2"),
        Ind.disputes_solved_here: ("D1", "D1 D2"),
        Ind.on_time_mediation: ("D1 D3", "D1 D2 D3"),
    }
    score = scored(Level.grid_staff, "GM-1", "GM-1", "2026-11", disputes, cover, policy)
    assert score is not None
    assert (score.score, score.grade, score.cases) == (GM1_SCORE, "D", 3)


def test_zhoushans_hundred_points_of_a_grid_and_its_team(disputes: list[CaseFacts]) -> None:
    cases = disputes + [fold(s.case_id, s.events) for s in people_stories("P")]
    mine = [c for c in cases if c.grid_code == GRID]
    cover = covered(doors("Q"), visits("Q"), START, END)
    score = scored(Level.grid_team, GRID, GRID, "2026-11", mine, cover, EvaluationPolicy())
    assert score is not None
    ratios = {i: (r.numerator, r.denominator) for i, r in score.indicators.items()}
    assert ratios[Ind.missed_reports] == (2, 3) and ratios[Ind.self_handled] == (2, 3)
    assert ratios[Ind.on_time_verification] == (2, 2) and ratios[Ind.visit_coverage] == (2, 2)
    assert (score.score, score.grade) == (TEAM_SCORE, "C")


def test_nothing_to_score_is_no_score() -> None:
    empty = covered([], [], START, END)
    assert (
        scored(Level.grid_staff, "GM-9", "GM-9", "2026-11", [], empty, EvaluationPolicy()) is None
    )


def test_the_people_weights_are_validated_with_every_error_listed() -> None:
    ok = EvaluationFile.model_validate(
        {"format": "gridloop-evaluation/1", "weights": {"grid_team": {"visit_coverage": 100}}}
    )
    assert check(ok) == []
    wrong = EvaluationFile.model_validate(
        {
            "format": "gridloop-evaluation/1",
            "weights": {
                "grid_staff": {"missed_reports": 10, "visit_coverage": 0},
                "street": {"visit_coverage": 5},
            },
        }
    )
    errors = check(wrong)
    assert any("weights.grid_staff.missed_reports" in e for e in errors)
    assert any("weights.street.visit_coverage" in e and "grid_staff" in e for e in errors)
    assert any("weights.grid_staff: needs a positive weight" in e for e in errors)
    with pytest.raises(ValueError, match="visit_coverage"):
        EvaluationFile.model_validate(
            {"format": "gridloop-evaluation/1", "weights": {"grid_staff": {"visit_coverage": -1}}}
        )


def test_bounds_of_a_day_week_and_month_in_the_citys_time() -> None:
    day = bounds("2026-11-29", ZONE)
    assert (day[1] - day[0]).days == 1 and day[0].utcoffset() is not None
    week = bounds("2026-W48", ZONE)
    assert week[0].isoformat().startswith("2026-11-23") and (week[1] - week[0]).days == 7
    assert bounds("2026-12", ZONE)[1].isoformat().startswith("2027-01-01")
