"""Running totals (`running.py`): what each case adds, summed, is the score of every fact;
a case that moves takes its part from where it was to where it is."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from gridloop.citypack.evaluation import EvaluationPolicy
from gridloop.scoring import Level, PeriodKind
from services.evaluation.facts import CaseFacts, fold
from services.evaluation.indicators import COMMAND_CENTRE, Judge
from services.evaluation.running import Delta, Key, contribution, counted_in, deltas, totalled
from services.evaluation.scores import score
from tests.evaluation_story import OTHER_GRID, Story

ZONE = ZoneInfo("Asia/Shanghai")
POLICY = EvaluationPolicy()
MONTH = "2026-11"


def facts_of(story: Story) -> CaseFacts:
    return fold(story.case_id, story.events)


def part(facts: CaseFacts) -> dict[str, object]:
    return contribution(facts, COMMAND_CENTRE, ZONE, Judge())


def cases() -> list[CaseFacts]:
    return [
        facts_of(Story("R-0").reported().filed(operator="wang").dispatched().done(rating=5)),
        facts_of(Story("R-1").reported().filed().dispatched().breach().done(rating=1).rework()),
        facts_of(
            Story("R-2")
            .reported(grid=OTHER_GRID)
            .filed(grid=OTHER_GRID)
            .dispatched("WATER")
            .returned("WATER")
            .dispatched()
            .done(rating=4)
        ),
        facts_of(Story("R-3").reported(channel="hotline").voided()),
    ]


def test_the_totals_of_every_case_s_part_are_the_score_of_every_fact() -> None:
    facts = cases()
    moved = deltas((None, part(f)) for f in facts)
    assert Key(Level.street, "002", PeriodKind.month, MONTH) in moved
    for key, delta in moved.items():
        totals = {"cases": delta.cases, "n": delta.numerators, "d": delta.denominators}
        counted = [f for f in facts if any(k == key for k, _ in counted_in(part(f)))]
        expected = score(key.level, key.entity, key.entity, key.period, key.kind, counted, POLICY)
        assert totalled(key, totals, key.entity, POLICY) == expected, key


def test_a_case_filed_in_another_grid_moves_its_part_between_streets() -> None:
    reported = Story("R-9").reported()  # in street 001…
    before = part(facts_of(reported))
    after = part(facts_of(reported.filed(grid=OTHER_GRID)))  # …filed in street 002
    moved = deltas([(before, after)])
    old, new = (Key(Level.street, s, PeriodKind.month, MONTH) for s in ("001", "002"))
    assert moved[old].cases == -1 and moved[new].cases == 1
    assert moved[new].denominators["filing_rate"] == 1
    assert moved[old].denominators["filing_rate"] == 0  # not decided yet in 001: not counted


def test_a_case_whose_verdicts_did_not_change_moves_nothing() -> None:
    story = Story("R-8").reported().filed().dispatched()
    counted = part(facts_of(story))
    assert deltas([(counted, counted)]) == {}
    assert deltas([(None, {"periods": {}, "judged": []})]) == {}


def test_a_score_no_case_counts_in_any_more_is_none() -> None:
    gone = Delta()
    key = Key(Level.street, "001", PeriodKind.month, MONTH)
    assert totalled(key, {"cases": gone.cases}, "001", POLICY) is None
