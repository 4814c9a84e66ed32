"""One valid event per CloudEvents type, for tests.

    sample("gridloop.case.filed")                  # an EventData of that type
    sample("gridloop.case.filed", version=3)       # with fields overridden
    sample_of(CaseFiled, case_id="C-2")            # typed as CaseFiled
    all_samples()                                  # ce_type → one instance each

A new event type needs an entry in `_FIELDS`; `tests/unit/test_envelope.py` fails until it
has one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from schemas.envelope import Envelope
from schemas.events import (
    EVENT_TYPES,
    CaseAnnotation,
    CaseDispatched,
    CaseEvent,
    CaseFiled,
    CaseReported,
    EventData,
    SlaEvent,
)

CASE_ID = "C-20250301-0001"
SOURCE = "/gridloop/tests"
TIME = datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
DEADLINE = datetime(2025, 3, 3, 17, 0, tzinfo=UTC)
ACTOR: dict[str, Any] = {"role": "supervisor", "id": "sup-0042"}

E = TypeVar("E", bound=EventData)

# The fields of each type beyond the common ones of CaseEvent / SlaEvent.
_FIELDS: dict[str, dict[str, Any]] = {
    "gridloop.case.reported": {
        "channel": "supervisor",
        "class_code": "01010",
        "kind": "component",
        "point": {"lon": 116.397, "lat": 39.909},
        "grid_code": "110101001001001",
        "description": "井盖破损 — manhole cover broken",
        "reporter": {"id": "sup-0042", "name": "张伟", "phone": "13800000000"},
        "urgency": "normal",
    },
    "gridloop.case.verified": {"note": "confirmed on site"},
    "gridloop.case.filed": {
        "kind": "event",
        "class_code": "0201",
        "grid_code": "11010100100100",
    },
    "gridloop.case.voided": {"reason": "not a city problem"},
    "gridloop.case.merged": {"into_case_id": "C-20250228-0007"},
    "gridloop.case.answered": {"knowledge_id": "heating-2026", "answer": "11月15日起供暖。"},
    "gridloop.case.self_handled": {"media": ["5f1b2c3d4e5f6a7b8c9d0e1f"], "note": "捡走了垃圾"},
    "gridloop.case.split": {"from_case_id": "C-20250228-0007", "reason": "a different bin"},
    "gridloop.case.dispatched": {
        "department": "sanitation",
        "deadline": DEADLINE,
        "rule": "class 0201 → sanitation",
        "assumed_years": [2027],
    },
    "gridloop.case.returned": {"department": "water", "reason": "not our pipe"},
    "gridloop.case.extended": {"deadline": DEADLINE},
    "gridloop.case.parked": {"reason": "waiting for spare parts"},
    "gridloop.case.resumed": {},
    "gridloop.case.handled": {"department": "sanitation", "note": "replaced the cover"},
    "gridloop.case.checked": {"passed": True},
    "gridloop.case.closed": {},
    "gridloop.case.rework": {"reason": "check failed"},
    "gridloop.case.feedback": {"rating": 4, "comment": "fast"},
    "gridloop.case.explained": {"department": "SANITATION", "explanation": "crew was at a fire"},
    "gridloop.case.acknowledged": {"department": "SANITATION"},
    "gridloop.case.extension_requested": {
        "department": "SANITATION",
        "request_id": "r-1",
        "reason": "the crane is booked",
        "deadline": DEADLINE,
    },
    "gridloop.case.extension_denied": {
        "department": "SANITATION",
        "request_id": "r-1",
        "reason": "the street must be clear by then",
    },
    "gridloop.case.parking_requested": {
        "department": "SANITATION",
        "request_id": "r-2",
        "reason": "waiting for the owner's permit",
    },
    "gridloop.case.parking_denied": {
        "department": "SANITATION",
        "request_id": "r-2",
        "reason": "a permit is not needed",
    },
    "gridloop.case.return_requested": {
        "department": "SANITATION",
        "request_id": "r-3",
        "reason": "the pipe is the water company's",
    },
    "gridloop.case.return_denied": {
        "department": "SANITATION",
        "request_id": "r-3",
        "reason": "the drain is yours",
    },
    "gridloop.case.void_requested": {"request_id": "v-1", "reason": "a prank call"},
    "gridloop.case.void_denied": {"request_id": "v-1", "reason": "a real pothole: file it"},
    "gridloop.case.resume_requested": {
        "department": "SANITATION",
        "request_id": "r-4",
        "reason": "the permit came",
    },
    "gridloop.case.resume_denied": {
        "department": "SANITATION",
        "request_id": "r-4",
        "reason": "the permit is for next month",
    },
    "gridloop.case.urged": {
        "department": "SANITATION",
        "urge_id": "u-1",
        "message": "the bin overflows: act today",
        "reply_by": DEADLINE,
    },
    "gridloop.case.urge_replied": {
        "department": "SANITATION",
        "urge_id": "u-1",
        "reply": "crew on site at 15:00",
    },
    "gridloop.case.callback_unreached": {"attempt": 1},
    "gridloop.case.callback_answered": {
        "contacted": True,
        "solved": True,
        "satisfaction": "basically_satisfied",
    },
    "gridloop.case.dispute_escalated": {
        "from_tier": "grid",
        "from_office": "110101001001001",
        "tier": "community",
        "office": "001001",
        "cause": "breach",
        "deadline": DEADLINE,
        "reason": "the grid's limit passed",
    },
    "gridloop.case.dispute_explained": {
        "tier": "grid",
        "office": "110101001001001",
        "explanation": "the parties were away for the holiday",
    },
    "gridloop.case.dispute_confirmed": {
        "tier": "community",
        "office": "001001",
        "parties": [{"side": "applicant"}, {"side": "respondent"}],
    },
    "gridloop.case.dispute_closed": {
        "tier": "community",
        "office": "001001",
        "confirmed": True,
        "parties": [{"side": "applicant"}, {"side": "respondent"}],
    },
    "gridloop.sla.warning": {},
    "gridloop.sla.breach": {},
    "gridloop.sla.escalation": {"tier": "street", "notify_department": "STREET-001"},
    # The grid's people: `case_id` carries the grid's code.
    "gridloop.grid.staff_assigned": {
        "actor": {"role": "admin", "id": "ops"},
        "staff": "GM-0001",
        "role": "grid_manager",
        "spell": "sp-1",
    },
    "gridloop.grid.staff_released": {
        "actor": {"role": "admin", "id": "ops"},
        "staff": "GM-0001",
        "role": "grid_manager",
        "spell": "sp-1",
    },
    "gridloop.grid.patrol_started": {
        "actor": {"role": "supervisor", "id": "SUP-0001"},
        "staff": "SUP-0001",
        "patrol": "pt-1",
        "point": {"lon": 116.4005, "lat": 39.9204},
    },
    "gridloop.grid.patrol_ended": {
        "actor": {"role": "supervisor", "id": "SUP-0001"},
        "staff": "SUP-0001",
        "patrol": "pt-1",
        "point": {"lon": 116.4005, "lat": 39.9204},
        "points": 12,
        "outside": 0,
    },
    # Households and visits (走访): keyed by the grid's code too.
    "gridloop.grid.visit_logged": {
        "actor": {"role": "grid_staff", "id": "GM-0001"},
        "staff": "GM-0001",
        "visit": "v-1",
        "at": TIME,
        "households": ["hh_0123456789abcdef", "hh_fedcba9876543210"],
        "findings": [
            {"type": "dispute", "text": "楼上漏水，邻里争执", "household": "hh_0123456789abcdef"},
            {"type": "need", "text": "老人需要助餐服务"},
        ],
    },
    "gridloop.grid.finding_reported": {
        "actor": {"role": "grid_staff", "id": "GM-0001"},
        "staff": "GM-0001",
        "visit": "v-1",
        "finding": 0,
        "finding_type": "dispute",
        "reported_case": "C-20250301-0002",
        "kind": "dispute",
    },
    "gridloop.grid.household_changed": {
        "actor": {"role": "grid_staff", "id": "GM-0001"},
        "household": "hh_0123456789abcdef",
        "building": "多福巷 11号楼",
        "door": "101",
        "occupancy": "rented",
        "change": 2,
    },
}


def sample_types() -> set[str]:
    """The ce_types the factory knows."""
    return set(_FIELDS)


def sample(ce_type: str, **overrides: Any) -> EventData:
    """A valid event of `ce_type`; `overrides` replace (or add) data fields."""
    model = EVENT_TYPES[ce_type]
    if ce_type not in _FIELDS:
        raise KeyError(f"no sample for {ce_type}: add one to tests/samples.py")
    fields: dict[str, Any] = {"case_id": CASE_ID}
    if issubclass(model, CaseEvent):
        fields |= {"version": 1, "actor": ACTOR}
    elif issubclass(model, CaseAnnotation):
        fields |= {"case_version": 1, "actor": ACTOR}
    elif issubclass(model, SlaEvent):
        fields |= {
            "case_version": 1,
            "stage": "handle",
            "department": "sanitation",
            "deadline": DEADLINE,
        }
    fields |= _FIELDS[ce_type]
    fields |= overrides
    return model.model_validate(fields)


def sample_of(model: type[E], **overrides: Any) -> E:
    """Like `sample`, typed as the model class."""
    event = sample(model.ce_type, **overrides)
    assert isinstance(event, model)
    return event


def all_samples() -> dict[str, EventData]:
    """ce_type → one valid instance, for every registered event type."""
    return {ce_type: sample(ce_type) for ce_type in sorted(EVENT_TYPES)}


def reported_to_dispatched(case_id: str) -> list[Envelope]:
    """A case's report, filing and dispatch (versions 1–3), a second apart from `TIME`."""
    events = [
        sample_of(CaseReported, case_id=case_id, version=1),
        sample_of(CaseFiled, case_id=case_id, version=2),
        sample_of(CaseDispatched, case_id=case_id, version=3),
    ]
    return [Envelope(e, "/t", TIME + timedelta(seconds=n)) for n, e in enumerate(events)]
