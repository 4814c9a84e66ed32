"""The race test's judge (tests/integration/race_audit.py) on logs written by hand: a race
won cleanly passes, and each defect issue 15 names is found."""

from __future__ import annotations

from typing import Any

from schemas.envelope import Envelope
from schemas.events import EventData
from tests.integration.race_audit import Answer, Shot, Trial, audit
from tests.samples import SOURCE, TIME, sample

CASE = "C-race"
REASON = "not ours"


def env(ce_type: str, **fields: Any) -> Envelope:
    data: EventData = sample(ce_type, case_id=CASE, **fields)
    return Envelope(data, SOURCE, TIME)


def dispatched_at_3() -> list[Envelope]:
    return [
        env("gridloop.case.reported", version=1),
        env("gridloop.case.filed", version=2),
        env("gridloop.case.dispatched", version=3, department="SANITATION"),
    ]


RETURN = Shot(
    "return",
    "dispatch",
    "/return",
    {},
    "SANITATION",
    "gridloop.case.returned",
    {"reason": REASON},
)
HANDLED = Shot(
    "handled", "dispatch", "/handled", {}, "SANITATION", "gridloop.case.handled", {"note": "b"}
)


def accepted(event: Envelope) -> Answer:
    return Answer(202, {"events": [event.id]})


def refused(state: str, version: int) -> Answer:
    return Answer(409, {"detail": [{"loc": ["state"]}], "state": state, "version": version})


def test_a_race_won_by_one_and_refused_to_the_other_passes() -> None:
    returned = env("gridloop.case.returned", version=4, reason=REASON, department="SANITATION")
    trial = Trial(CASE, 3, [RETURN, HANDLED], answers=[accepted(returned), refused("returned", 4)])
    trial.retries.append((accepted(returned), accepted(returned)))

    verdict = audit(trial, [*dispatched_at_3(), returned], {"state": "returned", "version": 4})

    assert verdict.problems == []
    assert not verdict.both_acted


def test_two_facts_at_one_version_are_found() -> None:
    returned = env("gridloop.case.returned", version=4, reason=REASON, department="SANITATION")
    handled = env("gridloop.case.handled", version=4, note="b")
    trial = Trial(CASE, 3, [RETURN, HANDLED], answers=[accepted(returned), accepted(handled)])

    verdict = audit(trial, [*dispatched_at_3(), returned, handled], {"state": "handled"})

    assert verdict.split and verdict.unreplayable and verdict.both_acted
    assert verdict.problems == ["v4: handled + returned"]


def test_a_2xx_whose_content_the_log_does_not_keep_is_found() -> None:
    first = env("gridloop.case.handled", version=4, note="a")
    second = env("gridloop.case.handled", version=4, note="b")  # the same event id
    assert first.id == second.id
    other = Shot(
        "handled", "dispatch", "/h", {}, "SANITATION", "gridloop.case.handled", {"note": "a"}
    )
    trial = Trial(CASE, 3, [other, HANDLED], answers=[accepted(first), accepted(second)])

    verdict = audit(trial, [*dispatched_at_3(), first, second], {"state": "handled", "version": 4})

    assert verdict.dropped == 1 and verdict.split
    assert "under one event id" in verdict.problems[0]
    assert "keeps handled {'note': 'a'} under its id, not {'note': 'b'}" in verdict.problems[1]


def test_a_refusal_without_state_and_version_or_unlike_the_log_is_found() -> None:
    returned = env("gridloop.case.returned", version=4, reason=REASON, department="SANITATION")
    log = [*dispatched_at_3(), returned]
    bare = Answer(409, {"detail": [{"loc": ["state"], "type": "invalid_transition"}]})
    for answer in (bare, refused("handled", 4), refused("dispatched", 2)):
        trial = Trial(CASE, 3, [RETURN, HANDLED], answers=[accepted(returned), answer])
        assert audit(trial, log, {"state": "returned", "version": 4}).bare == 1


def test_an_extension_approved_and_denied_and_a_lagging_projection_are_found() -> None:
    extended = env("gridloop.case.extended", version=4, request_id="r-1")
    denied = env("gridloop.case.extension_denied", case_version=3, request_id="r-1")
    trial = Trial(CASE, 3, [], answers=[])

    verdict = audit(trial, [*dispatched_at_3(), extended, denied], {"state": "dispatched"})

    assert verdict.decided_twice and verdict.projection_off
    assert verdict.problems == [
        "projected dispatched vNone, the log says dispatched v4",
        "extension request ['r-1'] approved and denied",
    ]
