"""A case's evaluation facts folded from hand-built event sequences: rounds of handling
with their deadlines, extensions, parking, returns, rework and reopening, and independence
from the order and repetition in which the events arrive."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from gridloop.lifecycle import State
from schemas.events import Stage
from services.evaluation.facts import fold
from tests.evaluation_story import HOUR, OTHER_GRID, START, Story


def test_a_supervisor_report_handled_in_time() -> None:
    story = Story("C-1").reported().filed().dispatched().acknowledged().done(rating=5)
    facts = fold("C-1", story.events)
    assert (facts.channel, facts.supervisor, facts.street, facts.community) == (
        "supervisor",
        "sup-7",
        "001",
        "001002",
    )
    assert facts.reported_at == START and facts.filed and facts.closed
    assert facts.state is State.evaluated and facts.rating == 5
    [handling] = facts.rounds
    assert handling.department == "SANITATION" and handling.acknowledged
    assert handling.due and not handling.late and handling.responded


def test_filing_corrects_the_grid() -> None:
    story = Story("C-1").reported().filed(grid=OTHER_GRID)
    assert fold("C-1", story.events).street == "002"


def test_a_supervisor_report_entered_by_the_centre_names_its_supervisor() -> None:
    centre = {"role": "supervision_centre", "id": "operator-3"}
    story = Story("C-1").reported(actor=centre, reporter_id="sup-9")
    assert fold("C-1", story.events).supervisor == "sup-9"


def test_a_citizen_report_has_no_supervisor() -> None:
    facts = fold("C-1", Story("C-1").reported(channel="website").events)
    assert facts.channel == "website" and facts.supervisor is None


def test_handled_after_the_deadline_is_late_without_a_breach() -> None:
    story = Story("C-1").reported().filed().dispatched(due_in=HOUR)
    story.handled(at=story.at + 2 * HOUR)
    assert fold("C-1", story.events).rounds[0].late


def test_an_extension_moves_the_deadline() -> None:
    story = Story("C-1").reported().filed().dispatched(due_in=HOUR)
    deadline = story.at + 10 * HOUR
    story.extended(deadline).handled(at=story.at + 3 * HOUR)  # past the first deadline
    [handling] = fold("C-1", story.events).rounds
    assert handling.deadline == deadline and not handling.late


def test_parking_leaves_lateness_to_the_sla_engine() -> None:
    # Parked for a day: the deadline moved by working time only the engine reckons.
    story = Story("C-1").reported().filed().dispatched(due_in=HOUR).parked()
    story.resumed(at=story.at + timedelta(days=1)).handled()
    assert not fold("C-1", story.events).rounds[0].late
    story = Story("C-2").reported().filed().dispatched(due_in=HOUR).parked().resumed()
    story.breach().handled()
    assert fold("C-2", story.events).rounds[0].late


def test_a_breach_read_after_a_timely_handling_does_not_count() -> None:
    story = Story("C-1").reported().filed().dispatched(due_in=10 * HOUR).handled()
    story.breach(deadline=story.at + HOUR)  # the engine raced with the handling
    assert not fold("C-1", story.events).rounds[0].late


def test_a_return_and_a_new_department() -> None:
    story = Story("C-1").reported().filed().dispatched("WATER").returned("WATER")
    story.dispatched("SANITATION").done()
    facts = fold("C-1", story.events)
    assert facts.departments == ["WATER", "SANITATION"] and facts.owner == "SANITATION"
    assert [r.returned for r in facts.rounds] == [True, False]
    assert facts.rounds[0].responded  # returning it is an answer too


def test_a_failed_check_goes_back_to_the_command_centre_and_a_new_round() -> None:
    """Issue 19: the rework waits on the command centre's dispatch clock; the department's
    new round starts with the re-dispatch, with the deadline dispatch told it."""
    story = Story("C-1").reported().filed().dispatched().handled().checked(passed=False)
    story.rework().breach(stage=Stage.dispatch, department="COMMAND-CENTRE")
    story.dispatched().handled().checked().closed()
    facts = fold("C-1", story.events)
    assert (facts.failed_checks, facts.reworks, facts.reopened) == (1, 1, 0)
    first, again = facts.rounds
    assert first.reworked and not first.late
    assert again.department == "SANITATION" and again.deadline is not None and not again.late
    assert [(d.opened, d.late) for d in facts.dispatches] == [(2, False), (6, True)]


def test_a_resumption_carries_the_moved_deadline() -> None:
    """Parked for a day and resumed with the deadline moved by it: handled after the first
    deadline, before the moved one, it is in time; after the moved one, late, without the
    engine's breach."""
    story = Story("C-1").reported().filed().dispatched(due_in=HOUR).parked()
    moved = story.at + timedelta(days=1, hours=1)
    story.resumed(at=story.at + timedelta(days=1), deadline=moved)
    story.handled(at=moved - timedelta(minutes=1))
    [handling] = fold("C-1", story.events).rounds
    assert handling.deadline == moved and not handling.late
    late = Story("C-2").reported().filed().dispatched(due_in=HOUR).parked()
    late.resumed(at=late.at + timedelta(days=1), deadline=moved).handled(at=moved + HOUR)
    assert fold("C-2", late.events).rounds[0].late


def test_the_supervisors_tasks_verification_and_check() -> None:
    story = Story("C-1").reported(channel="website", verifier="sup-3", verify_in=2 * HOUR)
    story.verified(by="sup-4").filed().dispatched().handled().checked(by="sup-5").closed()
    facts = fold("C-1", story.events)
    assert facts.verifier == "sup-3"
    assert facts.verification is not None
    assert (facts.verification.supervisor, facts.verification.late) == ("sup-4", False)
    [check] = facts.checks
    assert (check.supervisor, check.judged, check.late) == ("sup-5", True, False)
    assert facts.supervisors == ["sup-4", "sup-5"]


def test_a_verification_the_centre_settled_is_withdrawn_unless_late() -> None:
    in_time = Story("C-1").reported(channel="hotline", verifier="sup-3", verify_in=2 * HOUR)
    facts = fold("C-1", in_time.filed().events)  # filed by the centre an hour later
    assert facts.verification is not None and facts.verification.withdrawn
    assert not facts.verification.judged and facts.supervisors == []
    late = Story("C-2").reported(channel="hotline", verifier="sup-3", verify_in=2 * HOUR)
    late.filed(at=late.at + 3 * HOUR)
    facts = fold("C-2", late.events)
    assert facts.verification is not None and facts.verification.late
    assert facts.supervisors == ["sup-3"]  # the task was theirs, and it was left late


def test_a_dissatisfied_resident_reopens_the_case() -> None:
    story = Story("C-1").reported().filed().dispatched().done(rating=1).rework()
    facts = fold("C-1", story.events)
    assert (facts.reworks, facts.reopened) == (1, 1)
    assert facts.state is State.rework and not facts.closed and facts.closed_at is not None


def test_voided_and_merged() -> None:
    assert fold("C-1", Story("C-1").reported().filed().voided().events).voided
    assert fold("C-2", Story("C-2").reported(channel="hotline").merged().events).state is (
        State.merged
    )


def test_facts_without_the_report_yet_have_no_time() -> None:
    story = Story("C-1").reported().filed().dispatched()
    assert fold("C-1", story.events[1:]).reported_at is None


@given(st.randoms(use_true_random=False), st.integers(min_value=0, max_value=5))
def test_the_order_and_repetition_of_arrival_change_nothing(rnd: random.Random, n: int) -> None:
    story = Story("C-1").reported().filed().dispatched("WATER").acknowledged("WATER")
    story.returned("WATER").dispatched().parked().resumed().breach().handled()
    story.checked(passed=False).rework().handled().checked().closed().feedback(2).rework()
    expected = fold("C-1", story.events)
    shuffled = story.events + story.events[:n]
    rnd.shuffle(shuffled)
    assert fold("C-1", shuffled) == expected
