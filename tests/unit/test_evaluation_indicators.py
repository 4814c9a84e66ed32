"""Every indicator's formula on hand-built cases, with the cases it counted (drill-down),
at the place levels and for departments, and the periods a case counts in."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gridloop.scoring import APPLIES, Indicator, Level, PeriodKind
from schemas.events import Stage
from services.evaluation.facts import fold
from services.evaluation.indicators import count, entities, periods
from tests.evaluation_story import HOUR, START, Story

Ind = Indicator
SHANGHAI = ZoneInfo("Asia/Shanghai")


def figures(
    level: Level, entity: str, *stories: Story
) -> dict[Indicator, tuple[list[str], list[str]]]:
    cases = [fold(s.case_id, s.events) for s in stories]
    return {i: (c.numerator, c.denominator) for i, c in count(level, entity, cases).items()}


def on_street(*stories: Story) -> dict[Indicator, tuple[list[str], list[str]]]:
    return figures(Level.street, "001", *stories)


def test_filing_rate_counts_decided_reports_only() -> None:
    filed = Story("A").reported().filed()
    voided = Story("B").reported(channel="website").voided()
    filed_then_voided = Story("C").reported().filed().voided()
    pending = Story("D").reported(channel="website")
    merged = Story("E").reported(channel="hotline").merged()
    found = on_street(filed, voided, filed_then_voided, pending, merged)
    assert found[Ind.filing_rate] == (["A"], ["A", "B", "C"])


def test_dispatch_accuracy_and_response() -> None:
    right = Story("A").reported().filed().dispatched().acknowledged()
    wrong = Story("B").reported().filed().dispatched("WATER").returned("WATER").dispatched()
    silent = Story("C").reported().filed().dispatched()
    found = on_street(right, wrong, silent, Story("D").reported().filed())
    assert found[Ind.dispatch_accuracy] == (["A", "C"], ["A", "B", "C"])
    assert found[Ind.response] == (["A", "B"], ["A", "B", "C"])


def test_dispatch_accuracy_is_the_command_centres_not_the_departments() -> None:
    """Issue 19: a department that rightly returns a misdirected case loses nothing for it
    (its return is a response); the command centre's dispatch accuracy counts it."""
    wrong = Story("B").reported().filed().dispatched("WATER").returned("WATER").dispatched()
    right = Story("A").reported().filed().dispatched()
    water = figures(Level.department, "WATER", wrong)
    assert Ind.dispatch_accuracy not in water
    assert water[Ind.response] == (["B"], ["B"])
    centre = figures(Level.command_centre, "COMMAND-CENTRE", right, wrong)
    assert set(centre) == {Ind.dispatch_accuracy, Ind.on_time_dispatch}
    assert centre[Ind.dispatch_accuracy] == (["A"], ["A", "B"])


def test_on_time_dispatch_counts_the_command_centres_clock() -> None:
    """Filed, returned and reworked cases wait on the command centre: a dispatch after its
    clock breached is late; one still waiting is judged once its clock breached."""
    in_time = Story("A").reported().filed().dispatched()
    late = Story("B").reported().filed().breach(Stage.dispatch, "COMMAND-CENTRE").dispatched()
    returned = Story("C").reported().filed().dispatched("WATER").returned("WATER")
    returned.breach(Stage.dispatch, "COMMAND-CENTRE")  # not dispatched again yet
    waiting = Story("D").reported().filed()  # its clock has not run out
    reworked = Story("E").reported().filed().dispatched().handled().checked(passed=False)
    reworked.rework().dispatched()
    cases = (in_time, late, returned, waiting, reworked)
    centre = figures(Level.command_centre, "COMMAND-CENTRE", *cases)
    assert centre[Ind.on_time_dispatch] == (["A", "E"], ["A", "B", "C", "E"])
    assert on_street(*cases)[Ind.on_time_dispatch] == centre[Ind.on_time_dispatch]


def test_on_time_handling_with_extension_parking_and_open_cases() -> None:
    in_time = Story("A").reported().filed().dispatched().handled()
    late = Story("B").reported().filed().dispatched(due_in=HOUR)
    late.handled(at=late.at + 3 * HOUR)
    extended = Story("C").reported().filed().dispatched(due_in=HOUR)
    extended.extended(extended.at + 9 * HOUR).handled(at=extended.at + 3 * HOUR)
    parked_breached = Story("D").reported().filed().dispatched().parked().resumed().breach()
    not_yet_due = Story("E").reported().filed().dispatched()
    found = on_street(in_time, late, extended, parked_breached, not_yet_due)
    assert found[Ind.on_time_handling] == (["A", "C"], ["A", "B", "C", "D"])


def test_on_time_handling_judges_a_department_on_its_own_rounds() -> None:
    story = Story("A").reported().filed().dispatched("WATER").breach(department="WATER")
    story.returned("WATER").dispatched("SANITATION").handled()
    assert figures(Level.department, "WATER", story)[Ind.on_time_handling] == ([], ["A"])
    assert figures(Level.department, "SANITATION", story)[Ind.on_time_handling] == (
        ["A"],
        ["A"],
    )
    assert on_street(story)[Ind.on_time_handling] == ([], ["A"])


def test_closure_and_on_time_closure() -> None:
    closed = Story("A").reported().filed().dispatched().done()
    late_closed = Story("B").reported().filed().dispatched().breach().done()
    open_late = Story("C").reported().filed().dispatched().breach()
    open_in_time = Story("D").reported().filed().dispatched()
    check_late = Story("E").reported().filed().dispatched().handled()
    check_late.breach(stage=Stage.check).checked().closed()
    found = on_street(closed, late_closed, open_late, open_in_time, check_late)
    assert found[Ind.closure] == (["A", "B", "E"], ["A", "B", "C", "D", "E"])
    assert found[Ind.on_time_closure] == (["A"], ["A", "B", "C", "E"])


def test_on_time_closure_of_a_department_ignores_others_lateness() -> None:
    # WATER let it run late and returned it; SANITATION closed it in time; the check was late.
    story = Story("A").reported().filed().dispatched("WATER").breach(department="WATER")
    story.returned("WATER").dispatched("SANITATION").handled()
    story.breach(stage=Stage.check).checked().closed()
    sanitation = figures(Level.department, "SANITATION", story)[Ind.on_time_closure]
    assert sanitation == (["A"], ["A"])
    assert on_street(story)[Ind.on_time_closure] == ([], ["A"])


def test_rework_counts_failed_checks_and_reopening() -> None:
    clean = Story("A").reported().filed().dispatched().done()
    failed = Story("B").reported().filed().dispatched().handled().checked(passed=False)
    failed.rework().done()
    reopened = Story("C").reported().filed().dispatched().done(rating=1).rework()
    unhandled = Story("D").reported().filed().dispatched()
    found = on_street(clean, failed, reopened, unhandled)
    assert found[Ind.rework] == (["B", "C"], ["A", "B", "C"])


def test_supervisor_share() -> None:
    found = on_street(
        Story("A").reported().filed(),
        Story("B").reported(channel="hotline").filed(),
        Story("C").reported(channel="website").filed(),
    )
    assert found[Ind.supervisor_share] == (["A"], ["A", "B", "C"])


def test_resolution_and_satisfaction() -> None:
    happy = Story("A").reported().filed().dispatched().done(rating=5)
    content = Story("B").reported().filed().dispatched().done(rating=4)
    neutral = Story("C").reported().filed().dispatched().done(rating=3)
    reopened = Story("D").reported().filed().dispatched().done(rating=1).rework()
    unrated = Story("E").reported().filed().dispatched().done()
    found = on_street(happy, content, neutral, reopened, unrated)
    assert found[Ind.resolution] == (["A", "B", "C", "E"], ["A", "B", "C", "D", "E"])
    assert found[Ind.satisfaction] == (["A", "B"], ["A", "B", "C", "D"])


def test_a_department_is_judged_on_what_it_owns() -> None:
    story = Story("A").reported().filed().dispatched("WATER").returned("WATER")
    story.dispatched("SANITATION").done(rating=5)
    water = figures(Level.department, "WATER", story)
    assert set(water) == set(APPLIES[Level.department])
    assert water[Ind.closure] == ([], []) and water[Ind.satisfaction] == ([], [])
    sanitation = figures(Level.department, "SANITATION", story)
    assert sanitation[Ind.closure] == (["A"], ["A"])
    assert Ind.filing_rate not in sanitation


def test_a_department_drills_down_to_its_own_cases_only() -> None:
    water = Story("A").reported().filed().dispatched("WATER").returned("WATER")
    water.dispatched("SANITATION").done()
    roads = Story("B").reported().filed().dispatched("ROADS").done()
    cases = [fold(s.case_id, s.events) for s in (water, roads)]
    tally = count(Level.street, "001", cases)[Ind.dispatch_accuracy]
    assert (tally.numerator, tally.denominator) == (["B"], ["A", "B"])
    # WATER had A (and returned it): A alone, whatever the figure counts.
    shown = tally.shown_to("WATER", cases)
    assert (shown.numerator, shown.denominator) == ([], ["A"])
    assert tally.shown_to("SANITATION", cases).denominator == ["A"]
    assert tally.shown_to("PARKS", cases).denominator == []
    assert tally.shown_to(None, cases) is tally  # the centres see every case


def test_a_supervisor_is_rated_on_its_own_work() -> None:
    """Issue 19: the validity of its reports, its verifications and on-site checks in
    time; not the departments' closures."""
    mine = Story("A").reported().filed().dispatched().done()
    void = Story("B").reported().voided()
    found = figures(Level.supervisor, "sup-7", mine, void)
    assert set(found) == {
        *(Ind.filing_rate, Ind.on_time_verification, Ind.on_time_check),
        *(Ind.missed_reports, Ind.self_handled),  # issue 17: of its grid; counted apart
    }
    assert found[Ind.filing_rate] == (["A"], ["A", "B"])


def citizen(case_id: str, verifier: str = "sup-3") -> Story:
    """A hotline report given to `verifier`, due 2 hours later."""
    return Story(case_id).reported(channel="hotline", verifier=verifier, verify_in=2 * HOUR)


def test_on_time_verification_judges_who_verified_or_was_given_the_task() -> None:
    in_time = citizen("A").verified(by="sup-3")  # an hour after the report
    late = citizen("B")
    late.verified(by="sup-3", at=late.at + 3 * HOUR)
    refuted = citizen("C").voided(by="sup-3")  # refuted on site, in time
    by_another = citizen("D").verified(by="sup-4")  # whoever did it answers for it
    left = citizen("E").breach(Stage.verify, "SUPERVISION-CENTRE", deadline=START + 2 * HOUR)
    settled = citizen("F").filed()  # the centre filed it in time: nobody's task
    pending = citizen("G")  # not due yet
    cases = (in_time, late, refuted, by_another, left, settled, pending)
    sup3 = figures(Level.supervisor, "sup-3", *cases)
    assert sup3[Ind.on_time_verification] == (["A", "C"], ["A", "B", "C", "E"])
    assert sup3[Ind.filing_rate] == ([], [])  # it reported none of them
    sup4 = figures(Level.supervisor, "sup-4", *cases)
    assert sup4[Ind.on_time_verification] == (["D"], ["D"])
    assert on_street(*cases)[Ind.on_time_verification] == (
        ["A", "C", "D"],
        ["A", "B", "C", "D", "E"],
    )


def test_on_time_check_judges_the_supervisor_who_checked() -> None:
    """The SLA engine times the check from the handling (check PT4H in the demo)."""
    in_time = Story("A").reported().filed().dispatched().handled().checked(by="sup-5")
    late = Story("B").reported().filed().dispatched().handled()
    late.breach(Stage.check, "SUPERVISION-CENTRE").checked(by="sup-5").closed()
    unchecked = Story("C").reported().filed().dispatched().handled()
    unchecked.breach(Stage.check, "SUPERVISION-CENTRE")  # sup-7, its reporter, answers
    twice = Story("D").reported().filed().dispatched().handled().checked(passed=False, by="sup-5")
    twice.rework().dispatched().handled().checked(by="sup-6")
    cases = (in_time, late, unchecked, twice)
    assert figures(Level.supervisor, "sup-5", *cases)[Ind.on_time_check] == (
        ["A", "D"],
        ["A", "B", "D"],
    )
    assert figures(Level.supervisor, "sup-6", *cases)[Ind.on_time_check] == (["D"], ["D"])
    assert figures(Level.supervisor, "sup-7", *cases)[Ind.on_time_check] == ([], ["C"])
    assert on_street(*cases)[Ind.on_time_check] == (["A", "D"], ["A", "B", "C", "D"])


def test_the_entities_a_case_counts_for() -> None:
    story = Story("A").reported().filed().dispatched("WATER").returned("WATER").dispatched()
    story.handled().checked(by="sup-5")
    facts = fold("A", story.events)
    assert entities(facts, Level.grid) == ["110101001002001"]
    assert entities(facts, Level.community) == ["001002"]
    assert entities(facts, Level.street) == ["001"]
    assert entities(facts, Level.supervisor) == ["sup-7", "sup-5"]
    assert entities(facts, Level.department) == ["WATER", "SANITATION"]
    assert entities(facts, Level.command_centre, "CC-1") == ["CC-1"]
    citizen_report = fold("B", Story("B").reported(channel="website").events)
    assert entities(citizen_report, Level.supervisor) == []
    assert entities(citizen_report, Level.command_centre) == []  # not filed: nothing to do


def test_a_case_counts_in_its_reports_local_day_week_and_month() -> None:
    # 30 November 2026 20:00 UTC is 1 December 04:00 in Shanghai: December's case.
    assert periods(datetime(2026, 11, 30, 20, tzinfo=UTC), SHANGHAI) == {
        PeriodKind.day: "2026-12-01",
        PeriodKind.week: "2026-W49",
        PeriodKind.month: "2026-12",
    }
    # ISO weeks cross years: 1 January 2027 is a Friday of week 53 of 2026.
    assert periods(datetime(2027, 1, 1, 4, tzinfo=UTC), SHANGHAI)[PeriodKind.week] == "2026-W53"
