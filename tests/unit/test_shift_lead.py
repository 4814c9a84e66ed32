"""The shift lead (值班长): returns that wait for approval where the city pack says so, 督办
with its reply deadline on the pack's calendar, the reply, what the case view and record
make of them, and the new indicator in a department's score (hand-computed)."""

from __future__ import annotations

import copy
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridloop.access import Principal
from gridloop.access import Role as Access
from gridloop.calendar import SHANGHAI
from gridloop.cases import CaseView
from gridloop.cases.lights import Light, urge_light
from gridloop.cases.record import CaseRecord
from gridloop.cases.view import evolve
from gridloop.citypack import CityPack, load_city_pack
from gridloop.citypack.errors import CityPackError
from gridloop.citypack.evaluation import EvaluationPolicy
from gridloop.citypack.sla import Approvals, SlaPolicy
from gridloop.config import DEMO_CITY_PACK
from gridloop.errors import STATUS
from gridloop.lifecycle import State
from gridloop.refusal import Refused
from gridloop.scoring import Indicator, Level, PeriodKind
from schemas.envelope import Envelope
from schemas.events import (
    Actor,
    CaseResumed,
    CaseReturned,
    CaseUrged,
    CaseVoided,
    ResumeDenied,
    ResumeRequested,
    ReturnDenied,
    ReturnRequested,
    Role,
    UrgeReplied,
    VoidDenied,
    VoidRequested,
)
from services.console.approvals import waiting
from services.dispatch import core
from services.dispatch.commands import AnswerRequest, ReplyToUrge, Resume, Return, Urge
from services.evaluation.facts import fold
from services.evaluation.scores import score
from services.intake import core as intake
from services.intake.commands import AnswerVoid, Void
from tests.evaluation_story import HOUR, Story

PACK = load_city_pack(DEMO_CITY_PACK)
CASE = "C-lead"
# Tuesday 4 March 2025, 16:30 in Shanghai: one office hour left today (to 17:30).
NOW = datetime(2025, 3, 4, 16, 30, tzinfo=SHANGHAI)
LEAD = Actor(role=Role.shift_lead, id="lead-1")


def approving(pack: CityPack = PACK) -> CityPack:
    """The demo pack with returns and resumptions waiting for the shift lead."""
    changed = copy.copy(pack)
    approvals = Approvals(return_=True, resume=True, void=True)
    file = pack.sla.file.model_copy(update={"approvals": approvals})
    changed.sla = SlaPolicy(file, pack.city)
    return changed


def case(**overrides: Any) -> CaseView:
    fields: dict[str, Any] = {
        "case_id": CASE,
        "state": State.dispatched,
        "version": 4,
        "kind": "event",
        "class_code": "0102",
        "grid_code": "110101001002001",
        "department": "SANITATION",
        "deadline": NOW + timedelta(days=1),
    }
    return CaseView(**(fields | overrides))


def refused(status: int, code: str, call: Any, *args: Any) -> Refused:
    with pytest.raises(Refused) as info:
        call(*args)
    assert (STATUS[info.value.why], info.value.code) == (status, code), info.value.reason
    return info.value


def step(view: CaseView, data: Any, at: datetime = NOW) -> CaseView:
    return evolve(view, Envelope(data, "/tests", at))


# --- returns: at once by default, a request where the pack says so ------------------------


def test_the_demo_pack_returns_at_once() -> None:
    assert PACK.sla.returns_need_approval is False
    event = core.decide(PACK, case(), Return(CASE, "SANITATION", "h", "not ours", "r-1"), NOW)
    assert isinstance(event, CaseReturned)


def test_a_return_waits_for_the_shift_lead_where_the_pack_says_so() -> None:
    pack = approving()
    asked = Return(CASE, "SANITATION", "h", "the pipe is the water company's", "r-1")
    request = core.decide(pack, case(), asked, NOW)
    assert isinstance(request, ReturnRequested)
    assert (request.case_version, request.request_id, request.reason) == (4, "r-1", asked.reason)
    pending = step(case(), request)
    assert pending.state is State.dispatched  # a request does not move the case
    assert pending.pending_request is not None and pending.pending_request.kind == "return"
    # A second request while this one waits is refused.
    refused(409, "request_pending", core.decide, pack, pending, asked, NOW)

    approved = core.decide(pack, pending, AnswerRequest(CASE, "return", True, "lead-1"), NOW)
    assert isinstance(approved, CaseReturned)
    assert (approved.version, approved.department, approved.request_id) == (5, "SANITATION", "r-1")
    assert approved.actor == LEAD
    assert approved.reason == asked.reason  # the department's reason, when the lead adds none
    returned = step(pending, approved)
    assert (returned.state, returned.pending_request) == (State.returned, None)


def test_a_denied_return_needs_a_reason_and_leaves_the_case_with_the_department() -> None:
    pack = approving()
    asked = Return(CASE, "SANITATION", "h", "not ours", "r-1")
    pending = step(case(), core.decide(pack, case(), asked, NOW))
    no_reason = AnswerRequest(CASE, "return", False, "l")
    refused(422, "missing", core.decide, pack, pending, no_reason, NOW)
    denied = core.decide(
        pack, pending, AnswerRequest(CASE, "return", False, "lead-1", "it is yours: a drain"), NOW
    )
    assert isinstance(denied, ReturnDenied)
    assert (denied.department, denied.request_id, denied.actor) == ("SANITATION", "r-1", LEAD)
    after = step(pending, denied)
    assert (after.state, after.pending_request, after.department) == (
        State.dispatched,
        None,
        "SANITATION",
    )


def test_no_return_request_to_answer() -> None:
    answer = AnswerRequest(CASE, "return", True, "lead-1")
    refused(409, "no_pending_request", core.decide, approving(), case(), answer, NOW)


def test_the_approval_setting_is_validated_with_every_error_listed(tmp_path: Path) -> None:
    root = tmp_path / "pack"
    shutil.copytree(DEMO_CITY_PACK, root)
    sla = yaml.safe_load((root / "sla.yaml").read_text(encoding="utf-8"))
    sla["approvals"] = {"return": "perhaps", "restore": True}
    sla["urging"] = {"reply_within": "-PT1H", "clock": "lunar"}
    (root / "sla.yaml").write_text(yaml.safe_dump(sla, allow_unicode=True), encoding="utf-8")
    with pytest.raises(CityPackError) as info:
        load_city_pack(root)
    text = "\n".join(info.value.errors)
    for where in ("approvals.return", "approvals.restore", "urging.clock"):
        assert where in text, text
    # The pack with those two fixed still has the negative limit to report.
    sla["approvals"], sla["urging"]["clock"] = {"return": True}, "working"
    (root / "sla.yaml").write_text(yaml.safe_dump(sla, allow_unicode=True), encoding="utf-8")
    with pytest.raises(CityPackError) as again:
        load_city_pack(root)
    assert again.value.errors == ["sla.yaml: urging.reply_within: must be positive"]
    sla["urging"]["reply_within"] = "PT2H"
    (root / "sla.yaml").write_text(yaml.safe_dump(sla, allow_unicode=True), encoding="utf-8")
    assert load_city_pack(root).sla.returns_need_approval is True


# --- a parked case's resumption (挂账恢复): a request where the pack says so ------------

# Parked on Tuesday at 14:30 with its deadline Wednesday 10:00: four office hours left
# (Tue 14:30–17:30, Wed 09:00–10:00). Resumed at 16:30 the same day, those four hours run
# from then: Tue 16:30–17:30, then Wed 09:00–12:00.
PARKED_AT = datetime(2025, 3, 4, 14, 30, tzinfo=SHANGHAI)
PARKED_DUE = datetime(2025, 3, 5, 10, 0, tzinfo=SHANGHAI)
RESUMED_DUE = datetime(2025, 3, 5, 12, 0, tzinfo=SHANGHAI)
HANDLER = Actor(role=Role.department, id="SANITATION/h")


def parked() -> CaseView:
    return case(state=State.parked, deadline=PARKED_DUE, parked_at=PARKED_AT)


def test_the_demo_pack_resumes_at_once() -> None:
    assert PACK.sla.resumes_need_approval is False
    asked = Resume(CASE, HANDLER, "the permit came", "SANITATION", "r-2")
    resumed = core.decide(PACK, parked(), asked, NOW)
    assert isinstance(resumed, CaseResumed) and resumed.deadline == RESUMED_DUE


def test_a_resumption_waits_for_the_shift_lead_where_the_pack_says_so() -> None:
    pack = approving()
    asked = Resume(CASE, HANDLER, "the permit came", "SANITATION", "r-2")
    request = core.decide(pack, parked(), asked, NOW)
    assert isinstance(request, ResumeRequested)
    assert (request.case_version, request.request_id, request.department) == (
        4,
        "r-2",
        "SANITATION",
    )
    pending = step(parked(), request)
    assert pending.state is State.parked  # the clock stands still until the lead approves
    assert pending.pending_request is not None and pending.pending_request.kind == "resume"
    refused(409, "request_pending", core.decide, pack, pending, asked, NOW)

    approved = core.decide(pack, pending, AnswerRequest(CASE, "resume", True, "lead-1"), NOW)
    assert isinstance(approved, CaseResumed)
    assert (approved.version, approved.request_id, approved.actor) == (5, "r-2", LEAD)
    assert approved.deadline == RESUMED_DUE  # the four office hours left, from the approval
    assert approved.reason == "the permit came"
    resumed = step(pending, approved)
    assert (resumed.state, resumed.pending_request, resumed.deadline) == (
        State.dispatched,
        None,
        RESUMED_DUE,
    )


def test_a_denied_resumption_leaves_the_case_parked() -> None:
    pack = approving()
    asked = Resume(CASE, HANDLER, "the permit came", "SANITATION", "r-2")
    pending = step(parked(), core.decide(pack, parked(), asked, NOW))
    refused(
        422, "missing", core.decide, pack, pending, AnswerRequest(CASE, "resume", False, "l"), NOW
    )
    no = AnswerRequest(CASE, "resume", False, "lead-1", "the permit is for next month")
    denied = core.decide(pack, pending, no, NOW)
    assert isinstance(denied, ResumeDenied) and denied.request_id == "r-2"
    after = step(pending, denied)
    assert (after.state, after.pending_request) == (State.parked, None)


def test_a_resume_request_needs_a_reason_and_the_command_centre_never_waits() -> None:
    pack = approving()
    silent = Resume(CASE, HANDLER, None, "SANITATION", "r-2")
    refused(422, "missing", core.decide, pack, parked(), silent, NOW)
    centre = Resume(CASE, Actor(role=Role.command_centre, id="d-1"), "we resume it")
    resumed = core.decide(pack, parked(), centre, NOW)
    assert isinstance(resumed, CaseResumed) and resumed.deadline == RESUMED_DUE
    # Only the lead department asks; another is refused as the API refuses it today.
    other = Resume(CASE, Actor(role=Role.department, id="WATER/h"), "ours?", "WATER", "r-3")
    with pytest.raises(Refused):
        core.decide(pack, parked(), other, NOW)


def test_the_desk_shows_where_a_resumption_moves_the_deadline() -> None:
    request = {
        "request_id": "r-2",
        "kind": "resume",
        "department": "SANITATION",
        "reason": "the permit came",
        "case_version": 4,
    }
    record = CaseRecord.model_validate(
        {
            "_id": CASE,
            "state": "parked",
            "version": 4,
            "kind": "event",
            "class_code": "0102",
            "deadline": PARKED_DUE,
            "parked_at": PARKED_AT,
            "pending_request": request,
        }
    )
    [row] = waiting([record], NOW, PACK)
    assert row.moves_to == RESUMED_DUE
    [unknown] = waiting([record], NOW, None)  # no pack: the page says the clock runs again
    assert unknown.moves_to is None


# --- an intake operator's void (作废): a request where the pack says so ----------------

OPERATOR = Principal(Access.supervision_centre, "centre", "lin.fang")
LEAD_PERSON = Principal(Access.shift_lead, "lead", "chen.jie")


def reported() -> CaseView:
    return case(state=State.reported, version=1, department=None, deadline=None)


def test_the_demo_pack_voids_at_once() -> None:
    assert PACK.sla.voids_need_approval is False
    [voided] = intake.decide(PACK, reported(), Void(CASE, OPERATOR, "a prank", "v-1"), NOW)
    assert isinstance(voided, CaseVoided) and voided.version == 2


def test_a_void_waits_for_the_shift_lead_where_the_pack_says_so() -> None:
    pack = approving()
    asked = Void(CASE, OPERATOR, "not a city problem", "v-1")
    [request] = intake.decide(pack, reported(), asked, NOW)
    assert isinstance(request, VoidRequested)
    assert (request.case_version, request.request_id, request.reason) == (1, "v-1", asked.reason)
    pending = step(reported(), request)
    assert pending.state is State.reported  # the report waits, still to be filed
    assert pending.pending_request is not None and pending.pending_request.kind == "void"
    assert pending.pending_request.department is None
    refused(409, "request_pending", intake.decide, pack, pending, asked, NOW)

    [approved] = intake.decide(pack, pending, AnswerVoid(CASE, LEAD_PERSON, True), NOW)
    assert isinstance(approved, CaseVoided)
    assert (approved.version, approved.request_id, approved.reason) == (2, "v-1", asked.reason)
    assert approved.actor == Actor(role=Role.shift_lead, id="chen.jie")  # the person
    voided = step(pending, approved)
    assert (voided.state, voided.pending_request) == (State.voided, None)


def test_a_denied_void_needs_a_reason_and_leaves_the_report_to_be_filed() -> None:
    pack = approving()
    pending = step(
        reported(), intake.decide(pack, reported(), Void(CASE, OPERATOR, "x", "v-1"), NOW)[0]
    )
    refused(422, "missing", intake.decide, pack, pending, AnswerVoid(CASE, LEAD_PERSON, False), NOW)
    no = AnswerVoid(CASE, LEAD_PERSON, False, "a real pothole: file it")
    [denied] = intake.decide(pack, pending, no, NOW)
    assert isinstance(denied, VoidDenied) and denied.request_id == "v-1"
    after = step(pending, denied)
    assert (after.state, after.pending_request) == (State.reported, None)
    # denied: nothing is left to approve
    refused(
        409,
        "no_pending_request",
        intake.decide,
        pack,
        after,
        AnswerVoid(CASE, LEAD_PERSON, True),
        NOW,
    )


# --- 督办 --------------------------------------------------------------------------------


def test_an_urge_owes_a_reply_by_four_office_hours_on_the_pack_calendar() -> None:
    urged = core.decide(PACK, case(), Urge(CASE, "lead-1", "the bin overflows: act", "u-1"), NOW)
    assert isinstance(urged, CaseUrged)
    # 16:30–17:30 Tuesday is one office hour; Wednesday 09:00–12:00 the other three.
    assert urged.reply_by == datetime(2025, 3, 5, 12, 0, tzinfo=SHANGHAI)
    assert (urged.department, urged.urge_id, urged.case_version) == ("SANITATION", "u-1", 4)
    assert urged.actor == LEAD and urged.assumed_years == []


def test_one_open_urge_at_a_time_on_a_case_a_department_holds() -> None:
    urge = Urge(CASE, "lead-1", "act", "u-1")
    urged = step(case(), core.decide(PACK, case(), urge, NOW))
    assert (urged.urge_id, urged.urged_department) == ("u-1", "SANITATION")
    assert urged.version == 4  # an urge annotates the case, it does not move it
    refused(409, "urge_pending", core.decide, PACK, urged, Urge(CASE, "l", "again", "u-2"), NOW)
    refused(409, "invalid_transition", core.decide, PACK, case(state=State.handled), urge, NOW)


def test_the_urged_department_replies() -> None:
    urged = step(case(), core.decide(PACK, case(), Urge(CASE, "lead-1", "act", "u-1"), NOW))
    refused(
        409, "no_urge", core.decide, PACK, case(), ReplyToUrge(CASE, "SANITATION", "h", "ok"), NOW
    )
    other = ReplyToUrge(CASE, "WATER", "h", "not ours")
    assert refused(403, "forbidden", core.decide, PACK, urged, other, NOW).loc == (
        "path",
        "department",
    )
    reply = core.decide(PACK, urged, ReplyToUrge(CASE, "SANITATION", "h-2", "crew on site"), NOW)
    assert isinstance(reply, UrgeReplied)
    assert (reply.urge_id, reply.reply, reply.actor.id) == ("u-1", "crew on site", "SANITATION/h-2")
    answered = step(urged, reply)
    assert (answered.urge_id, answered.urged_department, answered.urge_reply_by) == (
        None,
        None,
        None,
    )
    # Answered: the shift lead may urge again.
    assert isinstance(core.decide(PACK, answered, Urge(CASE, "l", "more", "u-2"), NOW), CaseUrged)


def _entry(data: Any, at: datetime, n: int) -> dict[str, Any]:
    body = data.model_dump(mode="json", exclude={"case_id", "actor"})
    return {
        "event_id": f"e-{n}",
        "type": data.ce_type,
        "version": 4,
        "at": at,
        "actor": data.actor.model_dump(mode="json"),
        "data": body,
    }


def test_the_record_shows_each_urge_with_its_reply_and_light() -> None:
    first = CaseUrged(
        case_id=CASE,
        case_version=4,
        actor=LEAD,
        department="SANITATION",
        urge_id="u-1",
        message="act",
        reply_by=NOW + 4 * HOUR,
    )
    reply = UrgeReplied(
        case_id=CASE,
        case_version=4,
        actor=Actor(role=Role.department, id="SANITATION/h"),
        department="SANITATION",
        urge_id="u-1",
        reply="crew on site",
    )
    second = first.model_copy(update={"urge_id": "u-2", "reply_by": NOW + 30 * HOUR})
    timeline = [
        _entry(first, NOW, 1),
        _entry(reply, NOW + 5 * HOUR, 2),  # an hour late
        _entry(second, NOW + 26 * HOUR, 3),
    ]
    record = CaseRecord.model_validate(
        {"_id": CASE, "state": "dispatched", "version": 4, "timeline": timeline}
    )
    late, waiting = record.urges()
    assert (late.reply, late.replied_at) == ("crew on site", NOW + 5 * HOUR)
    assert urge_light(late, NOW + 6 * HOUR) is Light.red  # answered after its deadline
    assert record.open_urge() == waiting
    assert urge_light(waiting, NOW + 27 * HOUR) is Light.green
    assert urge_light(waiting, NOW + 29 * HOUR) is Light.yellow  # due within two hours
    assert urge_light(waiting, NOW + 31 * HOUR) is Light.red  # no reply by its deadline


# --- the department's score: urges answered in time ------------------------------------


def _urge(story: Story, urge_id: str, reply_in: timedelta) -> CaseUrged:
    urged = CaseUrged(
        case_id=story.case_id,
        case_version=story.version,
        actor=LEAD,
        department="SANITATION",
        urge_id=urge_id,
        message="act",
        reply_by=story.at + reply_in,
    )
    story.events.append(Envelope(urged, "/tests", story.at))
    return urged


def _reply(story: Story, urged: CaseUrged, at: datetime) -> None:
    data = UrgeReplied(
        case_id=story.case_id,
        case_version=urged.case_version,
        actor=Actor(role=Role.department, id="SANITATION/h"),
        department="SANITATION",
        urge_id=urged.urge_id,
        reply="on it",
    )
    story.events.append(Envelope(data, "/tests", at))


def test_urge_replies_count_in_the_departments_score_with_the_packs_weight() -> None:
    """Three cases dispatched to SANITATION, each acknowledged, none handled yet:
    A urged and answered in time; B urged, no reply, and the case moved on (an extension)
    after the reply deadline: known late; C urged, its deadline not reached: not judged.

    Indicators that apply: closure 0/3 (weight 15), response 3/3 (10), urge_replies 1/2
    (10): 100 × (15·0 + 10·1 + 10·0.5) / 35 = 42.857… → 42.86, grade D (≥ 40)."""
    a = Story("A").reported().filed().dispatched(due_in=48 * HOUR).acknowledged()
    _reply(a, _urge(a, "u-a", 2 * HOUR), a.at + HOUR)
    b = Story("B").reported().filed().dispatched(due_in=48 * HOUR).acknowledged()
    _urge(b, "u-b", 2 * HOUR)
    b.extended(b.at + 72 * HOUR).extended(b.at + 96 * HOUR).extended(b.at + 120 * HOUR)
    c = Story("C").reported().filed().dispatched(due_in=48 * HOUR).acknowledged()
    _urge(c, "u-c", 2 * HOUR)
    cases = [fold(s.case_id, s.events) for s in (a, b, c)]
    policy = load_city_pack(DEMO_CITY_PACK).evaluation
    assert policy.weights(Level.department)[Indicator.urge_replies] == 10.0
    found = score(
        Level.department, "SANITATION", "环卫", "2026-11", PeriodKind.month, cases, policy
    )
    ratios = {i: (r.numerator, r.denominator) for i, r in found.indicators.items()}
    assert ratios[Indicator.urge_replies] == (1, 2)
    assert ratios[Indicator.closure] == (0, 3) and ratios[Indicator.response] == (3, 3)
    assert found.score == 42.86 and found.grade == "D"
    # The pack's weight is what counts: without it, the urges change nothing.
    unweighted = EvaluationPolicy(
        policy.file.model_copy(
            update={
                "weights": {
                    Level.department: {
                        i: w
                        for i, w in policy.weights(Level.department).items()
                        if i is not Indicator.urge_replies
                    }
                }
            }
        )
    )
    plain = score(
        Level.department, "SANITATION", "环卫", "2026-11", PeriodKind.month, cases, unweighted
    )
    assert plain.score == 40.0  # 100 × (15·0 + 10·1) / 25


# --- the shift lead's desk -------------------------------------------------------------


def test_the_desk_shows_the_deadline_each_approval_moves() -> None:
    def pending(kind: str, deadline: datetime | None = None) -> CaseRecord:
        request = {
            "request_id": f"r-{kind}",
            "kind": kind,
            "department": "SANITATION",
            "reason": "why",
            "case_version": 3,
            "deadline": deadline,
        }
        return CaseRecord.model_validate(
            {
                "_id": f"C-{kind}",
                "state": "dispatched",
                "version": 3,
                "deadline": NOW + HOUR,
                "pending_request": request,
            }
        )

    later = NOW + 48 * HOUR
    plain = CaseRecord.model_validate({"_id": "C-none", "state": "dispatched", "version": 3})
    asked = [pending("extension", later), pending("parking"), pending("return"), plain]
    rows = waiting(asked, NOW, PACK)
    assert [(r.case.case_id, r.moves_to) for r in rows] == [
        ("C-extension", later),  # the new due time beside the current one
        ("C-parking", None),  # the clock stops
        ("C-return", None),  # the department's deadline ends
    ]
    assert {r.light for r in rows} == {Light.yellow}  # due within the hour: 将超时
