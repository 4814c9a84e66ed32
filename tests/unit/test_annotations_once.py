"""An annotation is one fact: an acknowledgement per department and dispatch, an explanation
per overdue version. Given twice it would carry one event id, and consumers would drop the
second while its sender got a 202: the second is refused instead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridloop.cases import CaseView, fold
from gridloop.lifecycle import State
from gridloop.refusal import Refused, Why
from schemas.envelope import Envelope
from schemas.events import Actor, CaseDispatched, CaseReported, Role
from services.dispatch import core
from services.dispatch.commands import Acknowledge, Explain

NOW = datetime(2026, 3, 3, 4, 0, tzinfo=UTC)
CASE = "C-ann"


def dispatched(version: int = 3) -> CaseView:
    report = CaseReported(
        case_id=CASE,
        version=1,
        actor=Actor(role=Role.supervisor, id="s"),
        channel="supervisor",
        kind="event",
        class_code="0102",
        point={"lon": 116.4, "lat": 39.9},
        grid_code="110101001001001",
        description="x",
    )
    dispatch = CaseDispatched(
        case_id=CASE,
        version=version,
        actor=Actor(role=Role.command_centre, id="cc"),
        department="WATER",
        assisting=["ROADS"],
        deadline=NOW - timedelta(hours=1),  # overdue
        rule="test",
    )
    return fold([Envelope(report, "/t", NOW), Envelope(dispatch, "/t", NOW)])


def acked(view: CaseView, department: str) -> CaseView:
    event = core.decide_acknowledge(view, Acknowledge(CASE, department, "crew"))
    return fold([Envelope(event, "/t", NOW)], view)


def test_lead_and_assisting_acknowledge_once_each_as_two_facts() -> None:
    view = dispatched()
    lead = core.decide_acknowledge(view, Acknowledge(CASE, "WATER", "crew"))
    assisting = core.decide_acknowledge(view, Acknowledge(CASE, "ROADS", "crew"))
    assert Envelope(lead, "/t").id != Envelope(assisting, "/t").id
    view = acked(view, "WATER")
    with pytest.raises(Refused) as again:
        core.decide_acknowledge(view, Acknowledge(CASE, "WATER", "another-crew"))
    assert (again.value.why, again.value.code) == (Why.conflict, "already_acknowledged")
    assert acked(view, "ROADS").acknowledged == ("WATER", "ROADS")


def test_a_new_dispatch_is_acknowledged_anew() -> None:
    view = acked(dispatched(), "WATER")
    redispatch = CaseDispatched(
        case_id=CASE,
        version=4,
        actor=Actor(role=Role.command_centre, id="cc"),
        department="WATER",
        deadline=NOW + timedelta(hours=4),
        rule="again",
    )
    view = fold([Envelope(redispatch, "/t", NOW)], view)
    assert view.state is State.dispatched and view.acknowledged == ()
    core.decide_acknowledge(view, Acknowledge(CASE, "WATER", "crew"))


def test_an_overdue_version_is_explained_once() -> None:
    view = dispatched()
    explained = core.decide_explain(view, Explain(CASE, "WATER", "crew", "rain"), NOW)
    view = fold([Envelope(explained, "/t", NOW)], view)
    with pytest.raises(Refused) as again:
        core.decide_explain(view, Explain(CASE, "WATER", "crew", "more rain"), NOW)
    assert again.value.code == "already_explained"
