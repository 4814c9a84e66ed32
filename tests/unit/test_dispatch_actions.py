"""Department actions and command-centre decisions: events, and refusals in wrong states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridloop.calendar import SHANGHAI
from gridloop.cases import CaseView, PendingRequest
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.errors import STATUS
from gridloop.lifecycle import InvalidTransition, State
from gridloop.refusal import Refused
from schemas.events import (
    Actor,
    CaseDispatched,
    CaseExtended,
    CaseFiled,
    CaseParked,
    CaseReported,
    CaseResumed,
    CaseReturned,
    EventData,
    ExtensionDenied,
    ParkingDenied,
    Role,
    Stage,
)
from services.dispatch import api, core
from services.dispatch.commands import (
    Acknowledge,
    AnswerRequest,
    DispatchByHand,
    Explain,
    Handle,
    RequestExtension,
    RequestKind,
    RequestParking,
    Resume,
    Return,
)
from services.sla.core import apply
from tests.samples import sample_of

CASE = "C-20250301-0042"
NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
DUE = NOW + timedelta(hours=2)
LATER = NOW + timedelta(days=2)


PACK = load_city_pack(DEMO_CITY_PACK)


@pytest.fixture(scope="module")
def pack() -> CityPack:
    return PACK


def case(**overrides: Any) -> CaseView:
    fields: dict[str, Any] = {
        "case_id": CASE,
        "state": State.dispatched,
        "version": 4,
        "kind": "event",
        "class_code": "0102",
        "grid_code": "110101001002001",
        "department": "SANITATION",
        "assisting": ("STREET-001",),
        "deadline": DUE,
    }
    return CaseView(**(fields | overrides))


def pending(kind: str, **overrides: Any) -> PendingRequest:
    fields: dict[str, Any] = {
        "request_id": "r-1",
        "kind": kind,
        "department": "SANITATION",
        "reason": "the crane is booked",
        "case_version": 4,
        "deadline": LATER if kind == "extension" else None,
    }
    return PendingRequest(**(fields | overrides))


def _actor(department: str, handler_id: str = "h") -> Actor:
    return Actor(role=Role.department, id=f"{department}/{handler_id}")


def _answer(
    kind: RequestKind,
    approve: bool,
    dispatcher: str,
    reason: str | None = None,
    deadline: datetime | None = None,
) -> AnswerRequest:
    """The command centre's answer to the case's pending `kind` request."""
    return AnswerRequest(CASE, kind, approve, dispatcher, reason, deadline)


def refused(status: int, code: str, call: Any, *args: Any) -> Refused:
    """`call(*args)` is refused with `code`, answered at the HTTP edge with `status`."""
    with pytest.raises(Refused) as info:
        call(*args)
    assert (STATUS[info.value.why], info.value.code) == (status, code), info.value.reason
    return info.value


# --- who may act --------------------------------------------------------------------------


def test_another_department_is_refused_everything() -> None:
    other = "WATER"
    calls: list[tuple[Any, ...]] = [
        (core.decide_acknowledge, case(), Acknowledge(CASE, other, "h")),
        (core.decide_handled, case(), Handle(CASE, other, "h")),
        (core.decide_return, PACK, case(), Return(CASE, other, "h", "r")),
        (
            core.decide_extension_request,
            case(),
            RequestExtension(CASE, other, "h", LATER, "r", "r-1"),
            NOW,
        ),
        (core.decide_parking_request, case(), RequestParking(CASE, other, "h", "r", "r")),
        (core.decide_explain, case(), Explain(CASE, other, "h", "e"), DUE + timedelta(hours=1)),
        (
            core.decide_resume,
            case(state=State.parked),
            Resume(CASE, _actor(other), None, other),
            PACK,
            NOW,
        ),
    ]
    for call, *args in calls:
        rejected = refused(403, "forbidden", call, *args)
        assert rejected.loc == ("path", "department")
        assert f"not dispatched to {other}" in rejected.reason


def test_an_assisting_department_may_acknowledge_but_not_handle_or_return() -> None:
    event = core.decide_acknowledge(case(), Acknowledge(CASE, "STREET-001", "h-9"))
    assert event.department == "STREET-001"
    assert event.actor == Actor(role=Role.department, id="STREET-001/h-9")
    refused(403, "forbidden", core.decide_handled, case(), Handle(CASE, "STREET-001", "h"))
    assisting_return = Return(CASE, "STREET-001", "h", "r")
    refused(403, "forbidden", core.decide_return, PACK, case(), assisting_return)


# --- acknowledge, return, handled ---------------------------------------------------------


def test_acknowledge_annotates_the_current_version() -> None:
    event = core.decide_acknowledge(case(), Acknowledge(CASE, "SANITATION", "h"))
    assert (event.case_version, event.department) == (4, "SANITATION")
    parked = core.decide_acknowledge(case(state=State.parked), Acknowledge(CASE, "SANITATION", "h"))
    assert parked.case_version == 4


@pytest.mark.parametrize("state", [State.handled, State.returned, State.closed, State.filed])
def test_acknowledge_in_the_wrong_state_is_refused(state: State) -> None:
    rejected = refused(
        409,
        "invalid_transition",
        core.decide_acknowledge,
        case(state=state),
        Acknowledge(CASE, "SANITATION", "h"),
    )
    assert f"is {state}" in rejected.reason


def test_return_goes_back_to_the_command_centre_with_the_reason() -> None:
    answer = Return(CASE, "SANITATION", "h", "the pipe is the water company's")
    event = core.decide_return(PACK, case(), answer)
    assert isinstance(event, CaseReturned)
    assert (event.version, event.department, event.reason) == (5, "SANITATION", answer.reason)


@pytest.mark.parametrize("state", [State.parked, State.handled, State.returned])
def test_return_in_the_wrong_state_is_invalid(state: State) -> None:
    with pytest.raises(InvalidTransition):
        core.decide_return(PACK, case(state=state), Return(CASE, "SANITATION", "h", "r"))


def test_handled_photos_must_be_links() -> None:
    with pytest.raises(ValueError, match="photos"):
        api.HandledIn.model_validate({"handler_id": "h", "photos": ["not a url"]})


# --- extension ----------------------------------------------------------------------------


def _extension(deadline: datetime = LATER, request_id: str = "r") -> RequestExtension:
    return RequestExtension(CASE, "SANITATION", "h", deadline, "the crane is booked", request_id)


def test_an_extension_request_carries_the_deadline_asked_for() -> None:
    event = core.decide_extension_request(case(), _extension(request_id="r-7"), NOW)
    assert (event.deadline, event.request_id, event.case_version) == (LATER, "r-7", 4)


def test_an_extension_must_end_after_the_current_deadline() -> None:
    rejected = refused(
        422,
        "deadline_not_later",
        core.decide_extension_request,
        case(),
        _extension(DUE - timedelta(minutes=1)),
        NOW,
    )
    assert rejected.loc == ("body", "deadline")


def test_a_second_request_while_one_is_pending_is_refused() -> None:
    waiting = case(pending_request=pending("parking"))
    rejected = refused(
        409,
        "request_pending",
        core.decide_extension_request,
        waiting,
        _extension(),
        NOW,
    )
    assert "parking request r-1" in rejected.reason
    refused(
        409,
        "request_pending",
        core.decide_parking_request,
        waiting,
        RequestParking(CASE, "SANITATION", "h", "r", "r"),
    )


def test_extension_of_a_parked_case_is_invalid() -> None:
    with pytest.raises(InvalidTransition):
        core.decide_extension_request(case(state=State.parked), _extension(), NOW)


def test_approving_an_extension_moves_the_deadline() -> None:
    decision = _answer("extension", True, "cc-1")
    event = core.decide_extension(case(pending_request=pending("extension")), decision, NOW)
    assert isinstance(event, CaseExtended)
    assert (event.version, event.deadline, event.request_id) == (5, LATER, "r-1")
    assert event.actor == Actor(role=Role.shift_lead, id="cc-1")  # the shift lead decides
    other = NOW + timedelta(days=1)
    shorter = core.decide_extension(
        case(pending_request=pending("extension")),
        _answer("extension", True, "cc-1", deadline=other),
        NOW,
    )
    assert shorter.deadline == other  # type: ignore[union-attr]


def test_an_approved_extension_never_ends_before_the_current_deadline() -> None:
    """The SLA engine never shortens a clock; an earlier date approved by hand would leave
    the case record and the engine with two deadlines."""
    earlier = _answer("extension", True, "cc-1", deadline=DUE - timedelta(minutes=30))
    with_request = case(pending_request=pending("extension"))
    refused(422, "deadline_not_later", core.decide_extension, with_request, earlier, NOW)


def test_denying_an_extension_needs_a_reason() -> None:
    with_request = case(pending_request=pending("extension"))
    refused(
        422,
        "missing",
        core.decide_extension,
        with_request,
        _answer("extension", False, "c"),
        NOW,
    )
    event = core.decide_extension(
        with_request, _answer("extension", False, "c", "the road must open"), NOW
    )
    assert isinstance(event, ExtensionDenied)
    assert (event.request_id, event.department, event.case_version) == ("r-1", "SANITATION", 4)


def test_deciding_without_a_pending_request_is_refused() -> None:
    extension = _answer("extension", True, "c", "x")
    for view in (case(), case(pending_request=pending("parking"))):
        refused(409, "no_pending_request", core.decide_extension, view, extension, NOW)
    refused(
        409,
        "no_pending_request",
        core.decide_parking,
        case(pending_request=pending("extension")),
        _answer("parking", True, "c", "x"),
    )
    stale = case(version=6, pending_request=pending("extension"))  # made at version 4
    refused(409, "no_pending_request", core.decide_extension, stale, extension, NOW)


# --- parking and resume -------------------------------------------------------------------


def test_parking_approved_then_resumed() -> None:
    request = core.decide_parking_request(
        case(), RequestParking(CASE, "SANITATION", "h", "permit", "r-2")
    )
    assert request.reason == "permit"
    parked = core.decide_parking(
        case(pending_request=pending("parking", request_id="r-2")), _answer("parking", True, "c")
    )
    assert isinstance(parked, CaseParked)
    assert (parked.version, parked.request_id) == (5, "r-2")
    resume = Resume(CASE, _actor("SANITATION"), None, "SANITATION")
    resumed = core.decide_resume(case(state=State.parked, version=5), resume, PACK, NOW)
    assert isinstance(resumed, CaseResumed)  # the demo pack: no approval to wait for
    assert resumed.version == 6
    assert resumed.actor == _actor("SANITATION")
    assert resumed.deadline is None  # parked when? unknown: nothing to move


def local(day: int, hh: int, mm: int = 0, month: int = 3, year: int = 2025) -> datetime:
    return datetime(year, month, day, hh, mm, tzinfo=SHANGHAI)


def _resumed(parked: CaseView, at: datetime) -> CaseResumed:
    """The command centre resumes `parked` at `at`."""
    actor = Actor(role=Role.command_centre, id="c")
    resumed = core.decide_resume(parked, Resume(CASE, actor), PACK, at)
    assert isinstance(resumed, CaseResumed)  # the command centre's never waits
    return resumed


# Exposed garbage (working clock) dispatched on Tuesday 4 March 2025 at 09:00 with 4 office
# hours: due 14:30 (09:00–12:00, 13:30–14:30).
@pytest.mark.parametrize(
    ("parked_at", "resumed_at", "due"),
    [
        # Issue 19: parked for an hour. 3 office hours were left at 10:00 (10–12, 13:30–
        # 14:30); from 11:00 they run to 15:30: the deadline moved by that hour.
        (local(4, 10), local(4, 11), local(4, 15, 30)),
        # Parked over two days: the same 3 hours from Thursday 09:00.
        (local(4, 10), local(6, 9), local(6, 12)),
        # Parked at lunch (12:30): only 13:30–14:30 was left, one hour; from 16:00, 17:00.
        (local(4, 12, 30), local(4, 16), local(4, 17)),
        # Parked overdue: nothing was left, so it is due as it resumes.
        (local(4, 15), local(6, 9), local(6, 9)),
    ],
)
def test_a_resumed_case_carries_its_deadline_moved_by_the_parking(
    parked_at: datetime, resumed_at: datetime, due: datetime
) -> None:
    parked = case(state=State.parked, version=5, deadline=local(4, 14, 30), parked_at=parked_at)
    resumed = _resumed(parked, resumed_at)
    assert (resumed.deadline, resumed.assumed_years) == (due, [])


def test_a_resumed_emergency_moves_by_natural_time() -> None:
    collapse = case(
        state=State.parked,
        version=5,
        class_code="0401",
        deadline=local(4, 21),
        parked_at=local(4, 20, 30),
    )
    resumed = _resumed(collapse, local(4, 22))
    assert resumed.deadline == local(4, 22, 30)  # the 30 minutes left, at night too


def test_a_resumed_deadline_in_an_unsupplied_year_is_flagged() -> None:
    """Half an office hour left at 17:00 on Thursday 31 December 2026; resumed at 17:20,
    ten minutes that day, twenty on Monday 4 January 2027 (New Year's Day and the
    weekend are off, reckoned without the year's notice)."""
    parked = case(
        state=State.parked,
        version=5,
        deadline=local(31, 17, 30, month=12, year=2026),
        parked_at=local(31, 17, month=12, year=2026),
    )
    resumed = _resumed(parked, local(31, 17, 20, month=12, year=2026))
    assert resumed.deadline == local(4, 9, 20, month=1, year=2027)
    assert resumed.assumed_years == [2027]


def test_the_resumed_deadline_is_the_sla_engines() -> None:
    """The engine, folding the same dispatch, parking and resumption, keeps the deadline
    dispatch reckoned; and its own reckoning (an event without one) agrees."""
    dispatched_at, parked_at, resumed_at = local(4, 9), local(4, 10), local(4, 11)
    grid = "110101001002001"
    steps: list[tuple[EventData, datetime]] = [
        (
            sample_of(
                CaseReported,
                version=1,
                channel="supervisor",
                kind="event",
                class_code="0102",
                grid_code=grid,
            ),
            dispatched_at,
        ),
        (
            sample_of(CaseFiled, version=2, kind="event", class_code="0102", grid_code=grid),
            dispatched_at,
        ),
        (
            sample_of(
                CaseDispatched, version=3, department="SANITATION", deadline=local(4, 14, 30)
            ),
            dispatched_at,
        ),
        (sample_of(CaseParked, version=4), parked_at),
    ]
    parked = case(state=State.parked, version=4, deadline=local(4, 14, 30), parked_at=parked_at)
    resumed = _resumed(parked, resumed_at)
    for told in (resumed, resumed.model_copy(update={"deadline": None})):
        state = None
        for data, at in [*steps, (told, resumed_at)]:
            change = apply(state, data, at, PACK.sla)
            state = change.state if change is not None else state
        assert state is not None
        handle = state.clock(Stage.handle)
        assert handle is not None and handle.due == resumed.deadline == local(4, 15, 30)


def test_parking_denied() -> None:
    event = core.decide_parking(
        case(pending_request=pending("parking")), _answer("parking", False, "c", "no")
    )
    assert isinstance(event, ParkingDenied)


def test_resume_of_a_case_that_is_not_parked_is_invalid() -> None:
    actor = Actor(role=Role.command_centre, id="c")
    with pytest.raises(InvalidTransition):
        core.decide_resume(case(), Resume(CASE, actor), PACK, NOW)


# --- explain ------------------------------------------------------------------------------


def test_a_case_parked_in_time_is_not_overdue_while_parked() -> None:
    """Its clock stands still: past the deadline on the wall clock, it is not late."""
    answer = Explain(CASE, "SANITATION", "h", "waiting for the permit")
    after = DUE + timedelta(hours=5)
    in_time = case(state=State.parked, parked_at=DUE - timedelta(minutes=1))
    refused(409, "not_overdue", core.decide_explain, in_time, answer, after)
    late = case(state=State.parked, parked_at=DUE + timedelta(minutes=1))
    assert core.decide_explain(late, answer, after).case_version == 4


def test_only_an_overdue_case_is_explained() -> None:
    answer = Explain(CASE, "SANITATION", "h", "the crew was at a fire")
    refused(409, "not_overdue", core.decide_explain, case(), answer, NOW)
    event = core.decide_explain(case(), answer, DUE + timedelta(minutes=1))
    assert (event.case_version, event.explanation) == (4, answer.explanation)
    refused(
        409,
        "invalid_transition",
        core.decide_explain,
        case(state=State.handled),
        answer,
        DUE + timedelta(minutes=1),
    )


# --- dispatch by hand ---------------------------------------------------------------------


def _order(**overrides: Any) -> DispatchByHand:
    fields: dict[str, Any] = {
        "case_id": CASE,
        "dispatcher": "cc-1",
        "department": "WATER",
        "assisting": ("SANITATION",),
        "reason": "the pipe burst under the litter",
    }
    return DispatchByHand(**(fields | overrides))


@pytest.mark.parametrize(
    "state", [State.filed, State.returned, State.rework, State.dispatched, State.parked]
)
def test_dispatch_by_hand(pack: CityPack, state: State) -> None:
    event = core.decide_manual_dispatch(pack, case(state=state), _order(), NOW)
    assert (event.department, event.assisting, event.basis) == ("WATER", ["SANITATION"], "manual")
    assert event.version == 5
    # The class's 4 office hours from Monday 20:00 in Shanghai: Tuesday 14:30.
    assert event.deadline == datetime(2025, 3, 4, 14, 30, tzinfo=SHANGHAI)
    assert event.assumed_years == []
    assert event.actor == Actor(role=Role.command_centre, id="cc-1")
    assert event.reason == "the pipe burst under the litter"


@pytest.mark.parametrize("state", [State.handled, State.closed, State.reported, State.voided])
def test_dispatch_by_hand_in_the_wrong_state_is_invalid(pack: CityPack, state: State) -> None:
    with pytest.raises(InvalidTransition):
        core.decide_manual_dispatch(pack, case(state=state), _order(), NOW)


def test_dispatch_by_hand_refuses_unknown_or_repeated_departments(pack: CityPack) -> None:
    rejected = refused(
        422,
        "unknown_department",
        core.decide_manual_dispatch,
        pack,
        case(),
        _order(department="NO-SUCH-DEPT"),
        NOW,
    )
    assert rejected.loc == ("body", "department")
    rejected = refused(
        422,
        "unknown_department",
        core.decide_manual_dispatch,
        pack,
        case(),
        _order(assisting=("SANITATION", "NO-SUCH-DEPT")),
        NOW,
    )
    assert rejected.loc == ("body", "assisting", "1")
    refused(
        422,
        "duplicate_department",
        core.decide_manual_dispatch,
        pack,
        case(),
        _order(assisting=("WATER",)),
        NOW,
    )
    refused(
        422,
        "deadline_passed",
        core.decide_manual_dispatch,
        pack,
        case(),
        _order(deadline=NOW - timedelta(hours=1)),
        NOW,
    )


def test_a_deadline_given_by_hand_is_taken_as_given(pack: CityPack) -> None:
    given = datetime(2027, 1, 8, 17, 0, tzinfo=SHANGHAI)  # in a year nobody supplied
    event = core.decide_manual_dispatch(pack, case(state=State.filed), _order(deadline=given), NOW)
    assert event.deadline == given
    assert event.assumed_years == []  # not reckoned on any calendar


def test_dispatch_by_hand_reckons_with_the_cases_urgency(pack: CityPack) -> None:
    urgent = case(state=State.filed, urgency="urgent")
    event = core.decide_manual_dispatch(pack, urgent, _order(), NOW)
    assert event.deadline == datetime(2025, 3, 4, 11, 0, tzinfo=SHANGHAI)  # PT2H


def test_rework_goes_back_to_the_department_that_handled_it(pack: CityPack) -> None:
    handled_by_water = case(state=State.rework, department="WATER", assisting=(), version=7)
    event = core.decide_rework_dispatch(pack, handled_by_water, 7, NOW)
    assert (event.department, event.version) == ("WATER", 8)
    assert event.deadline == datetime(2025, 3, 4, 14, 30, tzinfo=SHANGHAI)
    assert "rework" in event.rule
