"""The simulator's grid people (issue 17): who patrols which grid, where the track runs,
what visits find and become, how the tiers handle a dispute, who fixes what on the spot.
Seeded like the rest of the scenario: the same seed, the same day."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from shapely.geometry import Point

from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from system.simulate.profile import CASE_FINDINGS, FindingPlan, GridWork, Profile, Scenario

N = 2000


@pytest.fixture(scope="module")
def pack() -> CityPack:
    return load_city_pack(DEMO_CITY_PACK)


@pytest.fixture(scope="module")
def scenario(pack: CityPack) -> Scenario:
    return Scenario(pack, Profile(seed=7))


def test_the_grids_out_today_are_drawn_by_the_seed(pack: CityPack, scenario: Scenario) -> None:
    # The demo pack has 8 grids, fewer than the default 12: all of them are out.
    assert [g.code for g in scenario.field_grids()] == sorted(g.code for g in pack.grids)
    three = [Scenario(pack, Profile(seed=s, grid_work=GridWork(grids=3))) for s in (7, 7, 8)]
    drawn = [[g.code for g in s.field_grids()] for s in three]
    assert len(drawn[0]) == 3 and drawn[0] == drawn[1]
    assert drawn[0] != drawn[2]  # another seed, (here) other grids


def test_each_grid_manager_and_each_supervisor_patrol_once_in_their_grid(
    pack: CityPack, scenario: Scenario
) -> None:
    out = scenario.patrollers(scenario.field_grids())
    people = [staff for staff, _, _ in out]
    assert len(people) == len(set(people)) == 8 + 4  # one open patrol a person
    for staff, role, grid in out:
        assert grid.code in pack.grids_of(staff)
        assert {p.id: p.role.value for p in pack.staff_of(grid.code)}[staff] == role


def test_a_patrol_runs_inside_its_grid_through_the_shift(
    pack: CityPack, scenario: Scenario
) -> None:
    work = scenario.profile.grid_work
    for staff, role, grid in scenario.patrollers(scenario.field_grids()):
        plan = scenario.patrol(staff, role, grid)
        assert plan == scenario.patrol(staff, role, grid)  # seeded
        polygon = pack.polygon(grid.code)
        points = [plan.start, plan.end, *(p for _, piece in plan.pieces for p in piece)]
        assert all(polygon.covers(Point(lon, lat)) for lon, lat in points)
        times = [at for at, _ in plan.pieces]
        assert len(times) == work.track_pieces and times == sorted(times)
        assert timedelta(0) < times[0] and times[-1] < plan.clock_out == work.shift
        assert all(len(piece) == work.fixes_per_piece for _, piece in plan.pieces)


def test_visits_find_what_residents_raise_and_report_some_of_it(
    pack: CityPack, scenario: Scenario
) -> None:
    work, disputes = scenario.profile.grid_work, pack.sla.disputes
    assert disputes is not None
    findings: list[FindingPlan] = []
    for grid in pack.grids * 40:  # a grid's visits are its own: more grids, by seed
        many = Scenario(pack, Profile(seed=len(findings)))
        for visit in many.visits(grid):
            assert work.doors[0] <= visit.doors <= work.doors[1]
            assert timedelta(0) < visit.after < work.shift
            findings += visit.findings
            for f in visit.findings:
                assert 0 <= f.household < visit.doors
                assert pack.locate(*f.point) == grid
    kinds = Counter(f.type for f in findings)
    assert set(kinds) == set(work.findings) - {"none"}
    for f in findings:
        if f.type == "dispute":  # always a dispute of one of the pack's types
            assert f.report and f.class_code in disputes.types
        elif f.type in CASE_FINDINGS and f.report:  # an event of the catalogue
            assert ("event", f.class_code) in pack.classes
        else:
            assert not f.report and f.class_code is None
    hazards = [f for f in findings if f.type in CASE_FINDINGS]
    share = sum(f.report for f in hazards) / len(hazards)
    assert share == pytest.approx(work.case_share, abs=0.08)


def test_disputes_close_at_the_grid_or_go_up(pack: CityPack, scenario: Scenario) -> None:
    limit = timedelta(days=3)  # the demo pack's grid limit: beyond a day, nobody waits it out
    plans = [scenario.dispute(f"case-{n}") for n in range(N)]
    assert plans[:20] == [scenario.dispute(f"case-{n}") for n in range(20)]
    outcomes = Counter(p.outcome for p in plans)
    assert outcomes["overdue"] == 0
    assert outcomes["grid"] / N == pytest.approx(0.5, abs=0.04)
    assert all(p.mediate_after <= limit * 0.4 for p in plans)
    assert sum(not p.confirmed for p in plans) / N == pytest.approx(0.1, abs=0.03)
    # Where the grid's limit falls within the day, some are left to it (up on the breach).
    patient = Scenario(pack, Profile(seed=7, grid_work=GridWork(overdue_within=limit)))
    waited = Counter(patient.dispute(f"case-{n}").outcome for n in range(N))
    assert waited["escalate"] / N == pytest.approx(0.35, abs=0.04)
    assert waited["overdue"] / N == pytest.approx(0.15, abs=0.03)


def test_people_fix_only_classes_the_pack_allows(pack: CityPack, scenario: Scenario) -> None:
    allowed = {c.code for c in pack.classes.values() if c.self_handling and c.kind == "event"}
    grid = pack.grids[0]
    plans = [scenario.self_handling(f"GM-{n}", grid) for n in range(N)]
    fixes = [p for p in plans if p is not None]
    assert len(fixes) / N == pytest.approx(0.5, abs=0.04)
    assert {p.class_code for p in fixes} == allowed
    assert all(pack.locate(*p.point) == grid for p in fixes)
    never = Scenario(pack, Profile(grid_work=GridWork(self_handling_share=0.0)))
    assert never.self_handling("GM-1", grid) is None
