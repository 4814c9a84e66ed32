"""The tier ladder of disputes (矛盾纠纷) on hand-built histories: the pack's limits, the
order of escalation, explanations of overdue tiers, confirmation and closing, the SLA
engine's mediate clock, and refusals with clear errors."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gridloop.access import Principal, Role
from gridloop.calendar import SHANGHAI
from gridloop.cases.view import CaseView, fold
from gridloop.citypack import CityPackError, load_city_pack
from gridloop.citypack.disputes import office_code
from gridloop.config import DEMO_CITY_PACK
from gridloop.lifecycle import State
from gridloop.refusal import Refused, Why
from schemas.envelope import Envelope
from schemas.events import (
    CaseReported,
    DisputeClosed,
    DisputeConfirmed,
    DisputeEscalated,
    DisputeExplained,
    EventData,
    Party,
    SlaBreach,
    Stage,
)
from services.dispatch import disputes as do
from services.sla.core import CaseClocks, apply, due_events, record
from tests.samples import sample_of
from tests.unit.test_sla_policy import demo_sla, pack_copy

PACK = load_city_pack(DEMO_CITY_PACK)
GRID = "110101001002001"  # community 001002, street 001, district 110101
GRID_OFFICE = Principal(Role.grid_staff, "GM-0003")  # the grid manager (staff.yaml)
COMMUNITY = Principal(Role.tier_office, "001002")
STREET = Principal(Role.tier_office, "001")
DISTRICT = Principal(Role.tier_office, "110101")
BOTH = (Party(side="applicant"), Party(side="respondent"))


def local(d: int, hh: int = 9, mm: int = 0) -> datetime:
    return datetime(2025, 3, d, hh, mm, tzinfo=SHANGHAI)


TUESDAY = local(4)  # Tuesday 4 March 2025, 09:00


def reported(**kw: Any) -> CaseReported:
    fields = {"kind": "dispute", "class_code": "0101", "channel": "website", "grid_code": GRID}
    return sample_of(CaseReported, **(fields | kw))


def env(data: EventData, at: datetime) -> Envelope:
    return Envelope(data=data, source="/tests", time=at)


def history(*steps: tuple[EventData, datetime]) -> CaseView:
    return fold(env(d, at) for d, at in steps)


def refusal(case: CaseView, command: do.DisputeCommand, now: datetime) -> Refused:
    with pytest.raises(Refused) as caught:
        do.decide(PACK, case, command, now)
    return caught.value


def escalated(case: CaseView, now: datetime, who: Principal = GRID_OFFICE) -> CaseView:
    event = do.decide(PACK, case, do.Escalate(case.case_id, who, "beyond us"), now)
    return fold([env(event, now)], case)


# --- the pack ------------------------------------------------------------------------------


def test_the_demo_ladder_and_its_limits_in_working_time() -> None:
    ladder = PACK.sla.disputes
    assert ladder is not None
    assert ladder.tiers == ("grid", "community", "street", "district")
    assert ladder.limit("grid") == timedelta(hours=21)  # P3D: three days of 7 office hours
    assert ladder.above("grid") == "community"
    assert ladder.above("district") is None  # the demo stops at the district
    due, _ = ladder.deadline("grid", TUESDAY)
    assert due == local(6, 17, 30)  # Tue 09:00 + 3 working days: Thursday at closing time


def test_office_codes_up_the_tiers() -> None:
    assert [office_code(t, GRID) for t in ("grid", "community", "street", "district", "city")] == [
        GRID,
        "001002",
        "001",
        "110101",
        "city",
    ]


def test_a_bad_ladder_is_refused_with_every_error(tmp_path: Path) -> None:
    raw = demo_sla()
    raw["disputes"]["tiers"] = [
        {"tier": "community", "limit": "P5D"},
        {"tier": "grid", "limit": "-P1D"},
        {"tier": "street", "limit": "PT0S"},
    ]
    with pytest.raises(CityPackError) as caught:
        load_city_pack(pack_copy(tmp_path, raw))
    errors = "\n".join(caught.value.errors)
    for expected in (
        "disputes.tiers.0.tier: the grid mediates first, not the community",
        "disputes.tiers: tiers must go up",
        "disputes.tiers.1.limit: must be positive",
        "disputes.tiers.2.limit: must be positive",
    ):
        assert expected in errors, errors


def test_a_ladder_to_the_city_zhoushan(tmp_path: Path) -> None:
    raw = demo_sla()
    raw["disputes"]["tiers"].append({"tier": "city", "limit": "P20D"})
    ladder = load_city_pack(pack_copy(tmp_path, raw)).sla.disputes
    assert ladder is not None and ladder.above("district") == "city"


# --- the view and the commands --------------------------------------------------------------


def test_a_reported_dispute_is_held_by_its_grid() -> None:
    case = history((reported(), TUESDAY))
    assert case.state is State.reported
    assert case.spell is not None and (case.spell.tier, case.spell.office) == ("grid", GRID)


def test_escalation_goes_up_one_tier_at_a_time_to_the_top() -> None:
    case = history((reported(), TUESDAY))
    case = escalated(case, local(4, 10))
    assert case.state is State.mediating and case.spell is not None
    assert (case.spell.tier, case.spell.office, case.spell.version) == ("community", "001002", 2)
    case = escalated(case, local(4, 11), COMMUNITY)
    case = escalated(case, local(4, 14), STREET)
    assert [s.tier for s in case.spells] == ["grid", "community", "street", "district"]
    assert [s.cause for s in case.spells] == ["beyond_authority"] * 3 + [None]
    top = refusal(case, do.Escalate(case.case_id, DISTRICT, "too hard"), local(4, 15))
    assert (top.why, top.code) == (Why.conflict, "top_tier")


def test_only_the_holding_tier_acts() -> None:
    case = history((reported(), TUESDAY))
    strangers = (
        COMMUNITY,  # not yet its turn
        Principal(Role.department, "SANITATION"),
        Principal(Role.tier_office, GRID),  # the grid acts through its staff (the register)
        Principal(Role.grid_staff, "GM-0001"),  # another grid's manager
        Principal(Role.grid_staff, "SUP-0002"),  # the grid's supervisor mediates nothing
        Principal(Role.grid_staff, "NOBODY"),
    )
    for who in strangers:
        refused = refusal(case, do.Escalate(case.case_id, who, "not ours"), local(4, 10))
        assert refused.why is Why.forbidden, who
        assert "the grid (110101001002001) holds this dispute" in refused.reason


def test_the_offices_a_caller_acts_for() -> None:
    assert do.offices_of(PACK, GRID_OFFICE) == [GRID]
    assert do.offices_of(PACK, Principal(Role.grid_staff, "SUP-0002")) == []
    assert do.offices_of(PACK, COMMUNITY) == ["001002"]
    assert do.offices_of(PACK, Principal(Role.supervisor, "SUP-0002")) == []


def test_the_escalation_deadline_is_the_next_tiers_limit() -> None:
    case = history((reported(), TUESDAY))
    event = do.decide(PACK, case, do.Escalate(case.case_id, GRID_OFFICE, "beyond us"), TUESDAY)
    assert isinstance(event, DisputeEscalated)
    assert (event.from_tier, event.tier, event.cause) == ("grid", "community", "beyond_authority")
    assert event.deadline == local(10, 17, 30)  # P5D of office hours from Tuesday 09:00
    assert event.reason == "beyond us"


def test_a_breach_escalates_once() -> None:
    case = history((reported(), TUESDAY))
    breach = sample_of(SlaBreach, stage="mediate", case_version=1, department=GRID)
    [event] = do.escalate_on_breach(PACK, case, breach, local(7, 17, 31)) or []
    assert isinstance(event, DisputeEscalated) and event.cause == "breach"
    after = fold([env(event, local(7, 17, 31))], case)
    # The same breach read again (a redelivery, a restart): the grid no longer holds it.
    assert do.escalate_on_breach(PACK, after, breach, local(7, 18)) == []
    # A view behind the breach waits; a handling breach is none of the ladder's.
    assert (
        do.escalate_on_breach(
            PACK,
            history((reported(), TUESDAY)),
            breach.model_copy(update={"case_version": 2}),
            TUESDAY,
        )
        is None
    )
    handle = breach.model_copy(update={"stage": Stage.handle})
    assert do.escalate_on_breach(PACK, case, handle, TUESDAY) == []


def test_an_overdue_tier_explains_once_and_a_tier_in_time_has_nothing_to_explain() -> None:
    case = history((reported(), TUESDAY))
    early = refusal(case, do.ExplainOverdue(case.case_id, GRID_OFFICE, "busy"), local(5))
    assert (early.why, early.code) == (Why.conflict, "not_overdue")
    breach = sample_of(SlaBreach, stage="mediate", case_version=1, department=GRID)
    [up] = do.escalate_on_breach(PACK, case, breach, local(10)) or []
    case = fold([env(up, local(10))], case)
    # The grid left it by its breach: it owes an explanation though the community holds it.
    event = do.decide(PACK, case, do.ExplainOverdue(case.case_id, GRID_OFFICE, "away"), local(10))
    assert isinstance(event, DisputeExplained)
    assert (event.tier, event.office, event.case_version) == ("grid", GRID, 1)
    case = fold([env(event, local(10))], case)
    again = refusal(case, do.ExplainOverdue(case.case_id, GRID_OFFICE, "again"), local(10))
    assert again.code == "already_explained"
    stranger = refusal(case, do.ExplainOverdue(case.case_id, STREET, "?"), local(10))
    assert stranger.why is Why.forbidden


def test_a_tier_still_holding_past_its_deadline_owes_an_explanation() -> None:
    case = history((reported(), TUESDAY))
    event = do.decide(PACK, case, do.ExplainOverdue(case.case_id, GRID_OFFICE, "x"), local(10))
    assert isinstance(event, DisputeExplained)


def test_closing_needs_the_parties_confirmation_or_why_not() -> None:
    case = escalated(history((reported(), TUESDAY)), local(4, 10))
    unconfirmed = refusal(case, do.Close(case.case_id, COMMUNITY), local(5))
    assert (unconfirmed.why, unconfirmed.code, unconfirmed.loc) == (
        Why.invalid,
        "not_confirmed",
        ("body", "unconfirmed_reason"),
    )
    confirm = do.decide(PACK, case, do.Confirm(case.case_id, COMMUNITY, BOTH), local(5))
    assert isinstance(confirm, DisputeConfirmed) and confirm.case_version == case.version
    confirmed = fold([env(confirm, local(5))], case)
    closed = do.decide(PACK, confirmed, do.Close(case.case_id, COMMUNITY), local(5, 10))
    assert isinstance(closed, DisputeClosed)
    assert (closed.tier, closed.confirmed, closed.parties) == ("community", True, list(BOTH))
    done = fold([env(closed, local(5, 10))], confirmed)
    assert done.state is State.closed
    after = refusal(done, do.Confirm(case.case_id, COMMUNITY, BOTH), local(6))
    assert after.code == "dispute_closed"


def test_closed_without_confirmation_records_why() -> None:
    case = history((reported(), TUESDAY))
    why = "the respondent moved away and cannot be reached"
    closed = do.decide(PACK, case, do.Close(case.case_id, GRID_OFFICE, None, why), local(5))
    assert isinstance(closed, DisputeClosed)
    assert (closed.confirmed, closed.reason, closed.tier) == (False, why, "grid")


def test_a_confirmation_before_an_escalation_does_not_close_at_the_next_tier() -> None:
    case = history((reported(), TUESDAY))
    confirm = do.decide(PACK, case, do.Confirm(case.case_id, GRID_OFFICE, BOTH), local(4, 10))
    case = escalated(fold([env(confirm, local(4, 10))], case), local(4, 11))
    assert refusal(case, do.Close(case.case_id, COMMUNITY), local(5)).code == "not_confirmed"


def test_a_case_that_is_no_dispute_is_not_found_here() -> None:
    case = history((reported(kind="event", class_code="0102"), TUESDAY))
    assert refusal(case, do.Close(case.case_id, GRID_OFFICE), TUESDAY).why is Why.not_found


# --- the SLA engine's mediate clock ---------------------------------------------------------


def test_the_engine_times_each_tier_and_its_breach_names_the_tier_office() -> None:
    policy = PACK.sla
    change = apply(None, reported(), TUESDAY, policy)
    assert change is not None
    [clock] = change.state.clocks
    assert (clock.stage, clock.department, clock.due) == (Stage.mediate, GRID, local(6, 17, 30))
    [warning] = due_events("C1", change.state, local(6, 13), policy)
    assert warning.ce_type == "gridloop.sla.warning"
    state = record(change.state, warning, policy) or change.state
    [breach] = due_events("C1", state, local(6, 17, 31), policy)
    assert isinstance(breach, SlaBreach) and breach.case_version == 1
    state = record(state, breach, policy) or state
    assert due_events("C1", state, local(20), policy) == []  # no escalation of its own
    up = sample_of(
        DisputeEscalated, version=2, tier="community", office="001002", deadline=local(14)
    )
    moved = apply(state, up, local(7, 17, 31), policy)
    assert moved is not None
    [clock] = moved.state.clocks
    assert (clock.department, clock.opened, clock.due, clock.light) == (
        "001002",
        2,
        local(14),
        "green",
    )
    closed = sample_of(DisputeClosed, version=3)
    done = apply(moved.state, closed, local(8), policy)
    assert done is not None and done.state.clocks == ()


def test_a_dispute_opens_no_verification_clock() -> None:
    change = apply(CaseClocks(), reported(channel="hotline"), TUESDAY, PACK.sla)
    assert change is not None
    assert [c.stage for c in change.state.clocks] == [Stage.mediate]


# --- evaluation: resolution per tier --------------------------------------------------------


def test_a_dispute_solved_at_the_community_counts_there_and_not_at_the_grid() -> None:
    from gridloop.scoring import Indicator, Level
    from services.evaluation.facts import fold as facts_of
    from services.evaluation.indicators import count

    report = reported()
    up = sample_of(DisputeEscalated, case_id=report.case_id, version=2, office="001002")
    closed = sample_of(DisputeClosed, case_id=report.case_id, version=3, office="001002")
    facts = facts_of(
        report.case_id, [env(report, TUESDAY), env(closed, local(6)), env(up, local(5))]
    )
    assert (facts.dispute_tiers, facts.dispute_closed_by) == (["grid", "community"], "community")
    solved = Indicator.disputes_solved_here
    grid = count(Level.grid, GRID, [facts])[solved]
    community = count(Level.community, "001002", [facts])[solved]
    street = count(Level.street, "001", [facts])[solved]
    assert (grid.numerator, grid.denominator) == ([], [report.case_id])
    assert (community.numerator, community.denominator) == ([report.case_id], [report.case_id])
    assert street.denominator == []  # never reached the street
    assert solved not in count(Level.department, "SANITATION", [facts])
    # Nothing else counts a dispute: it was never filed, dispatched or verified.
    others = count(Level.grid, GRID, [facts])
    assert all(c.denominator == [] for i, c in others.items() if i is not solved)


def test_a_tiers_breach_is_no_departments_webhook() -> None:
    from services.notify.core import _told

    breach = sample_of(SlaBreach, stage="mediate", department=GRID)
    assert _told(breach, None) == (None, {})
    handling = sample_of(SlaBreach, stage="handle", department="SANITATION")
    assert _told(handling, None)[0] == "SANITATION"


def test_the_engines_metrics_label_every_tier_office_as_one() -> None:
    from services.sla.metrics import TIER_OFFICES, owner

    assert owner(GRID, Stage.mediate) == owner("001002", Stage.mediate) == TIER_OFFICES
    assert owner("SANITATION", Stage.handle) == "SANITATION"


def test_two_confirmations_with_other_parties_are_two_facts() -> None:
    from schemas.envelope import event_id

    first = sample_of(DisputeConfirmed, parties=[{"side": "applicant"}])
    again = sample_of(DisputeConfirmed, parties=[{"side": "applicant"}])
    both = sample_of(DisputeConfirmed, parties=[{"side": "respondent"}, {"side": "applicant"}])
    assert event_id(first) == event_id(again) != event_id(both)
