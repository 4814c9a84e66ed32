"""Answering directly (直接答复): a consultation answered from the knowledge base ends the case
`answered`; an expired entry, a case past `reported`, a supervisor's report and a role that
does not take consultations are refused, each with its status, field and reason."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gridloop.access import Principal
from gridloop.access import Role as Access
from gridloop.cases import CaseView
from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.errors import STATUS
from gridloop.lifecycle import OPEN_STATES, State, can
from gridloop.refusal import Refused
from schemas.events import Actor, CaseAnswered, Channel, Role, Stage
from services.console import core, knowledge
from services.intake.answering import decide_answer
from services.intake.commands import AnswerDirectly
from services.intake.core import decide
from services.sla.core import apply, leaves_table
from tests.samples import sample_of
from tests.unit import test_sla_core as sla_tests

CASE = "C-20261206-0001"
TODAY = date(2026, 12, 6)
HOTLINE = Principal(Access.hotline, "op-3")
CENTRE = Principal(Access.supervision_centre, "centre-1")


@pytest.fixture(scope="module")
def pack() -> CityPack:
    return load_city_pack(DEMO_CITY_PACK)


def _case(state: State = State.reported, channel: Channel = Channel.hotline) -> CaseView:
    return CaseView(case_id=CASE, state=state, version=1, channel=channel)


def _refusal(pack: CityPack, case: CaseView, command: AnswerDirectly) -> Refused:
    with pytest.raises(Refused) as refused:
        decide_answer(case, command, pack.knowledge, TODAY)
    return refused.value


def test_a_consultation_is_answered_and_ends(pack: CityPack) -> None:
    [event] = decide_answer(
        _case(), AnswerDirectly(CASE, HOTLINE, "heating-2026"), pack.knowledge, TODAY
    )
    assert isinstance(event, CaseAnswered)
    entry = pack.knowledge.entries["heating-2026"]
    assert (event.version, event.knowledge_id, event.answer) == (2, entry.id, entry.answer)
    assert event.actor == Actor(role=Role.hotline, id="op-3")
    assert event.reason == f"answered directly from the knowledge base: {entry.question}"
    # Terminal: not open, nothing leads out of it.
    assert State.answered not in OPEN_STATES
    assert not any(can(State.answered, t) for t in ("filed", "dispatched", "voided"))


def test_the_core_decides_it_on_the_city_day(pack: CityPack) -> None:
    # 2026-12-06 23:30 UTC is 7 December in Beijing: the entry is valid on both.
    now = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    command = AnswerDirectly(CASE, CENTRE, "waste-sorting-times", "已告知投放时间")
    [event] = decide(pack, _case(channel=Channel.website), command, now)
    assert isinstance(event, CaseAnswered) and event.reason == "已告知投放时间"
    assert event.actor == Actor(role=Role.supervision_centre, id="centre-1")


def test_an_expired_entry_cannot_be_used(pack: CityPack) -> None:
    refused = _refusal(pack, _case(), AnswerDirectly(CASE, HOTLINE, "heating-2025"))
    assert (STATUS[refused.why], refused.loc, refused.code) == (
        422,
        ("body", "knowledge_id"),
        "entry_expired",
    )
    assert refused.reason == (
        "entry heating-2025 is valid from 2025-10-01 until 2026-03-15: "
        "it cannot answer on 2026-12-06"
    )


def test_an_unknown_entry_is_refused(pack: CityPack) -> None:
    refused = _refusal(pack, _case(), AnswerDirectly(CASE, HOTLINE, "no-such"))
    assert (STATUS[refused.why], refused.loc, refused.code) == (
        422,
        ("body", "knowledge_id"),
        "unknown_entry",
    )


@pytest.mark.parametrize("state", [State.filed, State.verified, State.dispatched, State.answered])
def test_a_case_past_reported_is_refused(pack: CityPack, state: State) -> None:
    refused = _refusal(pack, _case(state), AnswerDirectly(CASE, HOTLINE, "heating-2026"))
    assert (STATUS[refused.why], refused.loc, refused.code) == (
        409,
        ("state",),
        "invalid_transition",
    )
    assert f"cannot apply 'answered' to a case that is {state.value}" in refused.reason


def test_a_supervisors_report_is_no_consultation(pack: CityPack) -> None:
    case = _case(channel=Channel.supervisor)
    refused = _refusal(pack, case, AnswerDirectly(CASE, CENTRE, "heating-2026"))
    assert (STATUS[refused.why], refused.loc, refused.code) == (
        409,
        ("path", "case_id"),
        "not_a_consultation",
    )


@pytest.mark.parametrize(
    "role", [Access.supervisor, Access.command_centre, Access.department, Access.public]
)
def test_a_role_that_takes_no_consultations_is_refused(pack: CityPack, role: Access) -> None:
    command = AnswerDirectly(CASE, Principal(role, "someone"), "heating-2026")
    refused = _refusal(pack, _case(), command)
    assert (STATUS[refused.why], refused.loc) == (403, ("header", "Authorization"))


def test_the_console_offers_and_calls_answering_a_consultation() -> None:
    """The workbench's knowledge section shows on a resident's report still as reported,
    and its button is intake's `POST /cases/{id}/answer` with the entry chosen."""

    def record(state: str, channel: str) -> CaseRecord:
        return CaseRecord.model_validate(
            {"_id": CASE, "state": state, "version": 1, "channel": channel}
        )

    assert knowledge.answerable(record("reported", "hotline"))
    assert knowledge.answerable(record("reported", "website"))
    assert not knowledge.answerable(record("reported", "supervisor"))
    assert not knowledge.answerable(record("verified", "website"))
    form = {"knowledge_id": "heating-2026", "note": "", "q": "供暖"}
    centre = Principal(Access.supervision_centre, "centre", "liu.yang")
    assert core.call(centre, CASE, "answer", form) == core.Call(
        "intake", f"/cases/{CASE}/answer", {"knowledge_id": "heating-2026"}
    )
    roads = Principal(Access.department, "ROADS", "wang.li")
    assert core.call(roads, CASE, "answer", form) is None


def test_the_sla_engine_closes_an_answered_consultations_clock_and_forgets_it() -> None:
    """A citizen's report runs the verification clock (核实); answered directly, the clock
    closes and the case leaves the SLA engine's table, like a voided one."""
    asked = sla_tests.reported("website")
    state = sla_tests.fold([(asked, sla_tests.TUESDAY)])
    assert [c.stage for c in state.clocks] == [Stage.verify]
    answered = sample_of(CaseAnswered, version=2)
    change = apply(state, answered, sla_tests.local(4, 10), sla_tests.POLICY)
    assert change is not None and change.state.clocks == ()
    assert leaves_table(change, answered)
