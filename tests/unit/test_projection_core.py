"""What each event changes on the case document: timeline, facts, state, SLA lights."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gridloop.cases import CaseView
from gridloop.cases.reader import view_of
from gridloop.cases.view import evolve
from gridloop.contacts import contact_id
from gridloop.lifecycle import OPEN_STATES, TRANSITIONS, State, transition_name
from gridloop.nearby import keys_of
from schemas.envelope import Envelope, event_id
from schemas.events import EVENT_TYPES, CaseEvent, EventData, SlaEvent, Stage
from services.projections.core import (
    REOPENING,
    facts,
    reopening,
    sla_change,
    state_change,
    timeline_entry,
)
from tests.samples import ACTOR, CASE_ID, DEADLINE, SOURCE, TIME, sample

CASE_TYPES = sorted(t for t, m in EVENT_TYPES.items() if issubclass(m, CaseEvent))

# The state each lifecycle event leads to, written out by hand from design.md §2.
EXPECTED_STATE = {
    "gridloop.case.reported": "reported",
    "gridloop.case.verified": "verified",
    "gridloop.case.filed": "filed",
    "gridloop.case.voided": "voided",
    "gridloop.case.merged": "merged",
    "gridloop.case.split": "reported",
    "gridloop.case.dispatched": "dispatched",
    "gridloop.case.returned": "returned",
    "gridloop.case.extended": "dispatched",
    "gridloop.case.parked": "parked",
    "gridloop.case.resumed": "dispatched",
    "gridloop.case.handled": "handled",
    "gridloop.case.checked": "checked",
    "gridloop.case.closed": "closed",
    "gridloop.case.rework": "rework",
    "gridloop.case.feedback": "evaluated",
    "gridloop.case.answered": "answered",
    "gridloop.case.dispute_escalated": "mediating",
    "gridloop.case.dispute_closed": "closed",
    "gridloop.case.self_handled": "self_handled",
}


def _env(data: EventData) -> Envelope:
    return Envelope(data=data, source=SOURCE, time=TIME)


# --- timeline ------------------------------------------------------------------------------


def test_timeline_entry_of_a_lifecycle_event() -> None:
    data = sample("gridloop.case.dispatched", version=4, reason="owner of the class")
    env = _env(data)
    entry = timeline_entry(env)
    assert entry["event_id"] == env.id == event_id(data)
    assert entry["type"] == "dispatched"
    assert entry["version"] == 4
    assert entry["at"] == TIME
    assert entry["actor"] == ACTOR
    assert entry["reason"] == "owner of the class"
    body = entry["data"]
    assert body["department"] == "sanitation"
    assert body["deadline"] == DEADLINE.isoformat().replace("+00:00", "Z")
    assert body["rule"] == "class 0201 → sanitation"
    assert not {"case_id", "version", "actor", "reason"} & set(body)


def test_timeline_entry_keeps_a_given_envelope_id() -> None:
    env = Envelope(data=sample("gridloop.case.closed"), source=SOURCE, time=TIME, id="given-id")
    assert timeline_entry(env)["event_id"] == "given-id"


def test_timeline_entry_of_an_sla_event() -> None:
    data = sample("gridloop.sla.breach", case_version=7, stage="handle")
    entry = timeline_entry(_env(data))
    assert entry["type"] == "gridloop.sla.breach"
    assert entry["version"] == 7
    assert entry["actor"] is None
    assert entry["reason"] is None
    assert entry["data"]["case_version"] == 7
    assert entry["data"]["stage"] == "handle"
    assert entry["data"]["department"] == "sanitation"


# --- facts ---------------------------------------------------------------------------------


def test_facts_of_reported() -> None:
    reported = sample("gridloop.case.reported")
    doc = facts(_env(reported))
    assert doc == {
        "channel": "supervisor",
        "kind": "component",
        "class_code": "01010",
        "grid_code": "110101001001001",
        "point": {"type": "Point", "coordinates": [116.397, 39.909]},
        "near": keys_of("component", "01010", 116.397, 39.909),  # the duplicate search's
        "description": "井盖破损 — manhole cover broken",
        # An event from before contacts left the log: its name and phone are dropped, the
        # reference names where `gridloop contacts migrate` keeps them.
        "reporter": {"id": "sup-0042", "contact": contact_id(reported.case_id)},
        "reported_at": TIME,
        "urgency": "normal",
    }
    ungraded = facts(_env(sample("gridloop.case.reported", urgency=None)))
    assert "urgency" not in ungraded


def test_facts_of_filed_and_others() -> None:
    assert facts(_env(sample("gridloop.case.filed"))) == {"filed_at": TIME}
    assert facts(_env(sample("gridloop.case.dispatched"))) == {}
    assert facts(_env(sample("gridloop.sla.warning"))) == {}


# --- state ---------------------------------------------------------------------------------


def test_every_lifecycle_type_is_covered() -> None:
    assert set(CASE_TYPES) == set(EXPECTED_STATE)


@pytest.mark.parametrize("ce_type", CASE_TYPES)
def test_state_change_gives_the_transition_target(ce_type: str) -> None:
    env = _env(sample(ce_type, version=6))
    change = state_change(env)
    assert change["state"] == TRANSITIONS[transition_name(ce_type)][1].value
    assert change["state"] == EXPECTED_STATE[ce_type]
    assert State(change["state"])  # a real state
    assert change["version"] == 6
    assert change["updated_at"] == TIME


def test_state_change_of_dispatched_sets_department_and_deadline() -> None:
    change = state_change(_env(sample("gridloop.case.dispatched", department="WATER")))
    assert change["department"] == "WATER"
    assert change["deadline"] == DEADLINE
    assert change["deadline_assumed_years"] == [2027]  # an estimate: flagged on the case


def test_state_change_of_extended_moves_the_deadline() -> None:
    later = DEADLINE + timedelta(days=1)
    change = state_change(_env(sample("gridloop.case.extended", deadline=later)))
    assert change["deadline"] == later
    assert change["deadline_assumed_years"] == []  # a date given by hand
    assert change["state"] == "dispatched"
    assert "department" not in change


def test_parking_records_when_and_the_resumption_moves_the_deadline() -> None:
    parked = state_change(_env(sample("gridloop.case.parked")))
    assert parked["parked_at"] == TIME and "deadline" not in parked
    moved = DEADLINE + timedelta(hours=1)
    resumed = state_change(
        _env(sample("gridloop.case.resumed", deadline=moved, assumed_years=[2027]))
    )
    assert (resumed["deadline"], resumed["deadline_assumed_years"]) == (moved, [2027])
    assert resumed["state"] == "dispatched"
    # A resumption from before the deadline was carried leaves the deadline as it was.
    assert "deadline" not in state_change(_env(sample("gridloop.case.resumed")))
    # The kernel's view of a case keeps when it was parked too (a head, or a document).
    assert evolve(view_of(doc_at(4)), _env(sample("gridloop.case.parked"))).parked_at == TIME
    assert view_of(doc_at(5) | {"parked_at": TIME}).parked_at == TIME
    moved_view = evolve(
        view_of(doc_at(5) | {"state": "parked"}),
        _env(sample("gridloop.case.resumed", version=6, deadline=moved)),
    )
    assert moved_view.deadline == moved


def doc_at(version: int) -> dict[str, object]:
    return {"_id": CASE_ID, "state": "dispatched", "version": version, "deadline": DEADLINE}


@pytest.mark.parametrize("name", ["closed", "voided", "merged"])
def test_state_change_of_an_ending_records_when(name: str) -> None:
    change = state_change(_env(sample(f"gridloop.case.{name}")))
    assert change[f"{name}_at"] == TIME


def test_state_change_of_other_types_records_no_ending() -> None:
    change = state_change(_env(sample("gridloop.case.handled")))
    assert not [k for k in change if k.endswith("_at") and k != "updated_at"]
    assert "deadline" not in change


# --- the duplicate search's keys: an open case's alone --------------------------------------


def test_a_report_gives_its_case_the_keys_the_search_asks_for() -> None:
    change = state_change(_env(sample("gridloop.case.reported")))
    assert change["open_near"] == keys_of("component", "01010", 116.397, 39.909)


@pytest.mark.parametrize("ce_type", CASE_TYPES)
def test_an_ended_case_has_no_keys_and_an_open_one_keeps_its_own(ce_type: str) -> None:
    change = state_change(_env(sample(ce_type, version=6)))
    if State(change["state"]) not in OPEN_STATES:
        assert change["open_near"] == []  # no duplicate's: the search does not read it
    elif ce_type != "gridloop.case.reported":
        assert "open_near" not in change  # as its report gave them


def test_a_reopened_case_gets_its_keys_back_if_it_is_still_open() -> None:
    assert {"rework", "split"} == REOPENING  # after the resident's rating; a merge undone
    found = reopening(_env(sample("gridloop.case.rework", version=9)))
    assert found is not None
    where, pipeline = found
    assert where["_id"] == CASE_ID and set(where["state"]["$in"]) == set(OPEN_STATES)
    assert pipeline == [{"$set": {"open_near": "$near"}}]  # its report's keys, kept for good
    assert reopening(_env(sample("gridloop.case.dispatched"))) is None
    assert reopening(_env(sample("gridloop.sla.breach"))) is None


def test_state_change_refuses_an_sla_event() -> None:
    with pytest.raises(AssertionError):
        state_change(_env(sample("gridloop.sla.breach")))


# --- SLA lights ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ce_type", "light"),
    [("gridloop.sla.warning", "yellow"), ("gridloop.sla.breach", "red")],
)
def test_sla_change_lights(ce_type: str, light: str) -> None:
    data = sample(ce_type, case_version=5, stage=Stage.handle)
    assert isinstance(data, SlaEvent)
    assert sla_change(data) == {
        "sla.handle.light": light,
        "sla.handle.deadline": DEADLINE,
        "sla.handle.case_version": 5,
    }


def test_sla_change_of_an_escalation_is_red_with_its_tier() -> None:
    data = sample("gridloop.sla.escalation", stage=Stage.check, tier="district")
    assert isinstance(data, SlaEvent)
    change = sla_change(data)
    assert change["sla.check.light"] == "red"
    assert change["sla.check.tier"] == "district"


# --- a projected document as the view commands decide on (a case from before heads) ----


def test_case_view_from_a_document() -> None:
    doc = {
        "_id": CASE_ID,
        "state": "dispatched",
        "version": 4,
        "kind": "event",
        "class_code": "0102",
        "grid_code": "110101001001001",
        "department": "SANITATION",
        "timeline": [],
    }
    view = view_of(doc)
    assert view == CaseView(
        CASE_ID, State.dispatched, 4, "event", "0102", "110101001001001", "SANITATION"
    )
    bare = view_of({"_id": CASE_ID, "state": "reported", "version": 1})
    assert bare.state is State.reported
    assert bare.department is None
