"""The simulator's scenario: seeded, independent of the order of draws, with the mix and
behaviour the profile asks for."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from schemas.events import Channel
from system.simulate.profile import Behaviour, Profile, Scenario, percentile
from system.simulate.run import parse_duration
from system.simulate.system import default_start

N = 3000


@pytest.fixture(scope="module")
def pack() -> CityPack:
    return load_city_pack(DEMO_CITY_PACK)


@pytest.fixture(scope="module")
def scenario(pack: CityPack) -> Scenario:
    return Scenario(pack, Profile(seed=7))


def test_the_same_seed_draws_the_same_city(pack: CityPack, scenario: Scenario) -> None:
    again = Scenario(pack, Profile(seed=7))
    other = Scenario(pack, Profile(seed=8))
    # Drawn in another order: each draw has its own stream.
    assert [again.report(n) for n in reversed(range(1, 50))][::-1] == [
        scenario.report(n) for n in range(1, 50)
    ]
    assert again.department(3, 1, timedelta(hours=4)) == scenario.department(
        3, 1, timedelta(hours=4)
    )
    assert again.arrivals(5, 60) == scenario.arrivals(5, 60)
    assert [other.report(n) for n in range(1, 50)] != [scenario.report(n) for n in range(1, 50)]


def test_reports_come_mostly_from_supervisors(scenario: Scenario) -> None:
    reports = [scenario.report(n) for n in range(N)]
    channels = Counter(r.channel for r in reports)
    assert channels[Channel.supervisor] / N == pytest.approx(0.70, abs=0.03)
    assert channels[Channel.hotline] / N == pytest.approx(0.20, abs=0.03)
    assert channels[Channel.website] / N == pytest.approx(0.10, abs=0.03)
    events = sum(r.kind == "event" for r in reports)
    assert events / N == pytest.approx(0.60, abs=0.03)


def test_event_classes_follow_their_majors_weights(scenario: Scenario) -> None:
    majors = Counter(r.class_code[:2] for r in map(scenario.report, range(N)) if r.kind == "event")
    present = {c.major for c in scenario.events}
    if {"01", "04"} <= present:  # 市容环境 is reported far more often than emergencies
        assert majors["01"] > 5 * majors["04"]


def test_points_lie_in_their_grid_and_components_exist(pack: CityPack, scenario: Scenario) -> None:
    reports = [scenario.report(n) for n in range(500)]
    by_id = [r for r in reports if r.component_id]
    assert by_id, "supervisors name coded components"
    for r in reports:
        if r.component_id:
            component = pack.components[r.component_id]
            assert (component.class_code, component.grid) == (r.class_code, r.grid_code)
            assert r.channel is Channel.supervisor
        else:
            assert r.point is not None
            grid = pack.locate(*r.point)
            assert grid is not None and grid.code == r.grid_code
        assert (r.kind, r.class_code) in pack.classes
        body = r.body("name")
        assert ("reporter" in body) is (r.channel is not Channel.supervisor)


def test_departments_return_and_extend_only_a_first_dispatch(scenario: Scenario) -> None:
    allowed = timedelta(hours=4)
    first = [scenario.department(n, 1, allowed) for n in range(N)]
    actions = Counter(p.action for p in first)
    assert actions["return"] / N == pytest.approx(0.04, abs=0.015)
    assert actions["extend"] / N == pytest.approx(0.05, abs=0.015)
    later = {scenario.department(n, 2, allowed).action for n in range(N)}
    assert later == {"handle"}


def test_late_handling_is_past_the_deadline_and_only_on_short_limits(
    scenario: Scenario,
) -> None:
    short = [scenario.department(n, 2, timedelta(hours=4)) for n in range(N)]
    late = [p for p in short if p.late]
    assert len(late) / N == pytest.approx(0.10, abs=0.02)
    assert all(p.handle_after > timedelta(hours=4) for p in late)
    assert all(p.handle_after <= timedelta(hours=4) * 0.95 for p in short if not p.late)
    assert all(p.acknowledge_after <= p.handle_after for p in short)
    long = [scenario.department(n, 2, timedelta(days=10)) for n in range(N)]
    assert not any(p.late for p in long)


def test_an_extension_is_needed_and_late_when_denied(scenario: Scenario) -> None:
    allowed = timedelta(hours=4)
    extended = [
        p for p in (scenario.department(n, 1, allowed) for n in range(N)) if p.action == "extend"
    ]
    assert extended
    assert all(p.handle_after > allowed for p in extended)
    assert all(p.late == p.extension_denied for p in extended)


def test_checks_and_residents(scenario: Scenario) -> None:
    failed = sum(not scenario.check(n, 1)[1] for n in range(N))
    assert failed / N == pytest.approx(0.08, abs=0.02)
    rated = [scenario.feedback(n, Channel.website) for n in range(N)]
    given = [r for r in rated if r is not None]
    assert len(given) / N == pytest.approx(0.6, abs=0.03)
    ratings = Counter(rating for _, rating in given)
    assert set(ratings) <= {1, 2, 3, 4, 5}
    assert ratings[5] / len(given) == pytest.approx(0.55, abs=0.04)
    assert (ratings[1] + ratings[2]) / len(given) == pytest.approx(0.10, abs=0.03)


def test_callbacks_reach_nobody_at_the_share_and_are_invalid_after_the_tries(
    scenario: Scenario,
) -> None:
    plans = [scenario.callback(n, 3) for n in range(N)]
    # Each call reaches nobody a quarter of the time: none unreached ≈ 3/4, all three ≈ 1/64.
    assert sum(p.unreached == 0 for p in plans) / N == pytest.approx(0.75, abs=0.03)
    invalid = [p for p in plans if p.unreached == 3]
    assert len(invalid) / N == pytest.approx(1 / 64, abs=0.01)
    assert all(p.rating is None for p in invalid)
    assert all(p.rating in {1, 2, 3, 4, 5} for p in plans if p.unreached < 3)
    unhappy = next(p for p in plans if p.rating == 1)
    assert unhappy.answers["satisfaction"] == "dissatisfied" and not unhappy.answers["solved"]
    happy = next(p for p in plans if p.rating == 4)
    assert happy.answers == {
        "contacted": True,
        "solved": True,
        "satisfaction": "satisfied",
        "comment": "simulated callback 4",
    }


def test_a_profile_changes_the_behaviour(pack: CityPack) -> None:
    strict = Scenario(pack, Profile(seed=7, behaviour=Behaviour(check_fail_share=1.0)))
    assert not any(strict.check(n, 1)[1] for n in range(100))


def test_arrivals_are_a_poisson_process_at_the_rate(scenario: Scenario) -> None:
    times = scenario.arrivals(rate=20, duration=100)
    assert len(times) == pytest.approx(2000, rel=0.1)
    assert times == sorted(times) and times[0] > 0 and times[-1] < 100


def test_a_returned_case_goes_elsewhere(pack: CityPack, scenario: Scenario) -> None:
    for n in range(50):
        report = scenario.report(n)
        owner = pack.classes[(report.kind, report.class_code)].owner
        assert scenario.redirect(owner, report) != owner


def test_the_simulated_day_starts_on_a_monday_morning() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    sunday = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)  # Monday 04:00 in Beijing
    assert default_start(sunday) == datetime(2026, 12, 7, 8, 0, tzinfo=shanghai)
    saturday = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    assert default_start(saturday) == datetime(2026, 11, 30, 8, 0, tzinfo=shanghai)


@pytest.mark.parametrize(
    ("text", "seconds"), [("20s", 20), ("5m", 300), ("1.5h", 5400), ("90", 90), ("PT20S", 20)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5s", "0"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_percentile() -> None:
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3
    assert percentile([5, 1, 3, 2, 4], 0.99) == 5
