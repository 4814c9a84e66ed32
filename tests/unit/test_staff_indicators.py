"""The centre's own staff scored per person (issue 18), and consultations answered directly
counted apart, on hand-built histories whose figures are worked out by hand below.

Operators (受理员) on filing or voiding before the `file` clock breached; dispatchers (派遣员)
on 1 − returns ÷ their dispatches; shift leads (值班长) on deciding requests within the pack's
`staff.approve_within` (1 hour in the demo pack)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from gridloop.citypack import CityPack, CityPackError, load_city_pack
from gridloop.citypack.evaluation import EvaluationPolicy
from gridloop.config import DEMO_CITY_PACK
from gridloop.scoring import APPLIES, Indicator, Level, PeriodKind
from schemas.events import Actor, Role, Stage
from services.dispatch import core as dispatch_core
from services.evaluation.facts import CaseFacts, fold
from services.evaluation.indicators import count, entities
from services.evaluation.report.model import answered_directly
from services.evaluation.scores import score
from tests.evaluation_story import HOUR, Story
from tests.unit.test_dispatch_actions import NOW as DISPATCH_NOW
from tests.unit.test_dispatch_actions import _order as dispatch_order
from tests.unit.test_dispatch_actions import case as dispatch_case

Ind = Indicator
MINUTE = timedelta(minutes=1)


@pytest.fixture(scope="module")
def pack() -> CityPack:
    return load_city_pack(DEMO_CITY_PACK)


def facts(*stories: Story) -> list[CaseFacts]:
    return [fold(s.case_id, s.events) for s in stories]


def figure(
    level: Level,
    entity: str,
    indicator: Indicator,
    cases: list[CaseFacts],
    within: timedelta = HOUR,
) -> tuple[list[str], list[str]]:
    found = count(level, entity, cases, approve_within=within)[indicator]
    return found.numerator, found.denominator


def filings() -> list[CaseFacts]:
    a = Story("A").reported().filed(operator="wang")  # in time
    b = Story("B").reported().breach(Stage.file, "SUPERVISION-CENTRE").voided(operator="wang")
    c = Story("C").reported(channel="website").verified().filed(operator="li")
    d = Story("D").reported().filed()  # by rule: nobody's
    e = Story("E").reported(channel="website").answered()
    f = Story("F").reported().filed(operator="li")
    f.breach(Stage.file, "SUPERVISION-CENTRE", deadline=f.at + HOUR)  # read after: no matter
    # Voided before any verification: the file clock never ran, so it is not judged.
    n = Story("N").reported(channel="hotline").voided(operator="wang")
    return facts(a, b, c, d, e, f, n)


def test_operators_on_time_filing() -> None:
    cases = filings()
    # wang: A in time, B after the breach (N not timed) → 1 of 2; li: C and F in time.
    assert figure(Level.operator, "wang", Ind.on_time_filing, cases) == (["A"], ["A", "B"])
    assert figure(Level.operator, "li", Ind.on_time_filing, cases) == (["C", "F"], ["C", "F"])
    counted_for = {c.case_id: entities(c, Level.operator) for c in cases}
    assert counted_for == {
        "A": ["wang"],
        "B": ["wang"],
        "C": ["li"],
        "D": [],
        "E": [],
        "F": ["li"],
        "N": [],  # not timed: counted for nobody
    }


def test_a_consultation_answered_directly_is_counted_apart() -> None:
    cases = filings()
    street = count(Level.street, "001", cases)
    # The residents' reports decided at intake: C filed, E answered, N voided.
    assert (street[Ind.answered_directly].numerator, street[Ind.answered_directly].denominator) == (
        ["E"],
        ["C", "E", "N"],
    )
    # E is in no filing rate, no dispatch and no command centre's figure.
    assert "E" not in street[Ind.filing_rate].denominator
    assert street[Ind.filing_rate].denominator == ["A", "B", "C", "D", "F", "N"]
    [answered] = [c for c in cases if c.case_id == "E"]
    assert answered.answered and answered.knowledge_id == "heating-2026"
    assert entities(answered, Level.command_centre) == []
    assert entities(answered, Level.department) == []


def test_dispatchers_accuracy() -> None:
    g = Story("G").reported().filed().dispatched(dispatcher="zhao").handled()
    h = Story("H").reported().filed().dispatched("WATER", dispatcher="zhao").returned("WATER")
    h.dispatched("SANITATION", dispatcher="qian")
    i = Story("I").reported().filed().dispatched().returned()  # the routing's: nobody's
    cases = facts(g, h, i)
    # zhao: G stood, H returned → 1 − 1/2; qian: H stood after the re-dispatch.
    assert figure(Level.dispatcher, "zhao", Ind.dispatch_accuracy, cases) == (["G"], ["G", "H"])
    assert figure(Level.dispatcher, "qian", Ind.dispatch_accuracy, cases) == (["H"], ["H"])
    assert {c.case_id: entities(c, Level.dispatcher) for c in cases} == {
        "G": ["zhao"],
        "H": ["zhao", "qian"],
        "I": [],
    }
    # The command centre's own figure is unchanged: every dispatch, by hand or by rule.
    centre = count(Level.command_centre, "COMMAND-CENTRE", cases)[Ind.dispatch_accuracy]
    assert (centre.numerator, centre.denominator) == (["G"], ["G", "H", "I"])


def approvals() -> list[CaseFacts]:
    j = Story("J").reported().filed().dispatched().requested("r1")
    j.extended(j.at + 9 * HOUR, "r1", "sun", at=j.at + 30 * MINUTE)  # 29 minutes after
    k = Story("K").reported().filed().dispatched().requested("r2")
    k.denied("r2", "sun", k.at + 2 * HOUR)  # 1 h 59 min after the request
    m = Story("M").reported().filed().dispatched().requested("r3")
    m.extended(m.at + 9 * HOUR, "r3", "zhou", at=m.at + 61 * MINUTE)  # exactly 1 hour after
    p = Story("P").reported().filed().dispatched().requested("r4")  # not decided yet
    return facts(j, k, m, p)


def test_shift_leads_on_time_approval() -> None:
    cases = approvals()
    assert figure(Level.shift_lead, "sun", Ind.on_time_approval, cases) == (["J"], ["J", "K"])
    assert figure(Level.shift_lead, "zhou", Ind.on_time_approval, cases) == (["M"], ["M"])
    # With two hours to decide, sun's denial of r2 was in time too.
    assert figure(Level.shift_lead, "sun", Ind.on_time_approval, cases, 2 * HOUR) == (
        ["J", "K"],
        ["J", "K"],
    )
    assert [entities(c, Level.shift_lead) for c in cases] == [["sun"], ["sun"], ["zhou"], []]


def test_staff_scores_with_the_packs_weights(pack: CityPack) -> None:
    policy = pack.evaluation
    assert policy.approve_within == HOUR
    month, kind = "2026-11", PeriodKind.month
    wang = score(Level.operator, "wang", "wang", month, kind, filings(), policy)
    assert (wang.score, wang.grade, wang.cases) == (50.0, "D", 7)
    sun = score(Level.shift_lead, "sun", "sun", month, kind, approvals(), policy)
    assert (sun.score, sun.grade) == (50.0, "D")
    assert set(sun.indicators) == set(APPLIES[Level.shift_lead]) == {Ind.on_time_approval}


def test_a_bad_approval_limit_is_refused_at_load(tmp_path: Path) -> None:
    root = tmp_path / "pack"
    shutil.copytree(DEMO_CITY_PACK, root)
    path = root / "evaluation.yaml"
    text = path.read_text(encoding="utf-8").replace("approve_within: PT1H", "approve_within: PT0S")
    path.write_text(text.replace("on_time_filing: 100", "on_time_filing: -1"), encoding="utf-8")
    with pytest.raises(CityPackError) as refused:
        load_city_pack(root)
    assert [e.split(": ")[1] for e in refused.value.errors] == [
        "weights.operator.on_time_filing",
        "staff.approve_within",
    ]
    assert EvaluationPolicy().approve_within == HOUR  # a pack without it: one hour


def test_the_monthly_reports_data_counts_answered_directly_by_street() -> None:
    cases = [
        {"_id": "A", "state": "answered", "grid_code": "110101001002001"},
        {"_id": "B", "state": "answered", "grid_code": "110101001001002"},
        {"_id": "C", "state": "answered", "grid_code": "110101002001001"},
        {"_id": "D", "state": "voided", "grid_code": "110101002001001"},
        {"_id": "E", "state": "filed", "grid_code": "110101001002001"},
    ]
    assert answered_directly(cases) == {"001": 2, "002": 1}


def test_dispatch_records_the_person_signed_in_beside_the_name_the_body_gave(
    pack: CityPack,
) -> None:
    """A dispatcher's or shift lead's body names who acts (`dispatcher`); the session that
    sent it names the person signed in, and the event keeps both when they differ: the
    staff's scores go to the person (`actor.person`)."""
    by_hand = dispatch_core.decide_manual_dispatch(
        pack, dispatch_case(), dispatch_order(person="zhao.min"), DISPATCH_NOW
    )
    assert by_hand.actor == Actor(role=Role.command_centre, id="cc-1", person="zhao.min")
    same = dispatch_order(dispatcher="zhao.min", person="zhao.min")
    alone = dispatch_core.decide_manual_dispatch(pack, dispatch_case(), same, DISPATCH_NOW)
    assert alone.actor == Actor(role=Role.command_centre, id="zhao.min")  # said once
    assert "person" not in alone.model_dump()["actor"]  # written as before issue 18
