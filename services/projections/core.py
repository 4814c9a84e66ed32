"""What an event changes on the case document. Pure: no I/O.

The case document: `_id` (case id), `state` and `version` (of the newest transition),
`timeline` (every event, ordered by case version then time), plus facts for queries.
Events of one case arrive through several topics, so their order across topics is not
guaranteed: the timeline is a set ordered on read by version, and `state` follows the
highest version seen, never an older one.
"""

from __future__ import annotations

from typing import Any

from gridloop.cases.view import DENIALS, REQUEST_KINDS, REQUESTS
from gridloop.contacts import contact_id
from gridloop.lifecycle import OPEN_STATES, TRANSITIONS, transition_name
from gridloop.nearby import keys_of
from schemas.envelope import Envelope
from schemas.events import (
    CaseAnnotation,
    CaseDispatched,
    CaseEvent,
    CaseExtended,
    CaseFiled,
    CaseMerged,
    CaseParked,
    CaseReported,
    CaseResumed,
    CaseSplit,
    CaseUrged,
    DepartmentRequest,
    DisputeEscalated,
    DisputeExplained,
    SlaBreach,
    SlaEscalation,
    SlaEvent,
    SlaWarning,
    VoidRequest,
)

Document = dict[str, Any]
HasActor = CaseEvent | CaseAnnotation

# The transitions that open an ended case again (reopened after the resident's rating, a
# merge undone): its cell keys for the duplicate search come back (`reopening`).
REOPENING = frozenset(
    name
    for name, (sources, target) in TRANSITIONS.items()
    if target in OPEN_STATES and any(s is not None and s not in OPEN_STATES for s in sources)
)


def timeline_entry(env: Envelope) -> Document:
    data = env.data
    version = data.version if isinstance(data, CaseEvent) else getattr(data, "case_version", 0)
    # Lifecycle types are named by their transition; annotations and SLA facts in full.
    body = data.model_dump(mode="json", exclude={"case_id", "version", "actor", "reason"})
    if isinstance(data, CaseReported):
        body["reporter"] = reporter_doc(data)
    return {
        "event_id": env.id,
        "type": transition_name(env.type) if isinstance(data, CaseEvent) else env.type,
        "version": version,
        "at": env.time,
        "actor": data.actor.model_dump(mode="json") if isinstance(data, HasActor) else None,
        "reason": data.reason if isinstance(data, CaseEvent) else None,
        "data": body,
    }


def reporter_doc(data: CaseReported) -> Document:
    """The reporter as projected: their id and their contact's reference, never a name or
    a phone. An event written before contacts left the log still carries them: they are
    dropped here, and the reference names where `gridloop contacts migrate` keeps them."""
    reporter = data.reporter
    ref = reporter.contact
    if ref is None and (reporter.name or reporter.phone):
        ref = contact_id(data.case_id)
    return {"id": reporter.id, "contact": ref}


def facts(env: Envelope) -> Document:
    """Fields that never change once known: safe to set whatever the arrival order."""
    data = env.data
    if isinstance(data, CaseReported):
        return (
            {
                "channel": data.channel.value,
                "kind": data.kind,
                "class_code": data.class_code,
                "grid_code": data.grid_code,
                "point": {"type": "Point", "coordinates": [data.point.lon, data.point.lat]},
                # Its cell keys, kept for good: an open case's `open_near` are these.
                "near": keys_of(data.kind, data.class_code, data.point.lon, data.point.lat),
                "description": data.description,
                "reporter": reporter_doc(data),
                "reported_at": env.time,
            }
            | ({"component_id": data.component_id} if data.component_id else {})
            | _intake_facts(data)
        )
    if isinstance(data, CaseFiled):
        return (
            {"filed_at": env.time}
            | ({"component_id": data.component_id} if data.component_id else {})
            | ({"case_number": data.case_number} if data.case_number else {})
        )
    if isinstance(data, CaseUrged):
        return {"urged": True}  # once urged (督办), always: the shift lead's desk asks
    return {}


def _intake_facts(data: CaseReported) -> Document:
    """Media, address, the verification task and the urgency of a report, when it has
    them."""
    found: Document = {"media": data.media} if data.media else {}
    if data.address:
        found["address"] = data.address
    if data.verification_due:
        found |= {"verifier": data.verifier, "verification_due": data.verification_due}
    if data.urgency:
        found["urgency"] = data.urgency
    return found


def state_change(env: Envelope) -> Document:
    """What a lifecycle event sets when it is the newest version of the case."""
    data = env.data
    assert isinstance(data, CaseEvent)
    name = transition_name(env.type)
    change: Document = {"version": data.version, "updated_at": env.time}
    change["state"] = TRANSITIONS[name][1].value
    change |= open_cells(data, TRANSITIONS[name][1] in OPEN_STATES)
    change["pending_request"] = None  # a transition settles (or supersedes) any request
    change["requested"] = False
    if isinstance(data, CaseDispatched):
        change |= {
            "department": data.department,
            "assisting": data.assisting,
            "deadline": data.deadline,
            # reckoned into a year nobody supplied a calendar for: an estimate
            "deadline_assumed_years": data.assumed_years,
        }
    elif isinstance(data, CaseExtended):
        change |= {"deadline": data.deadline, "deadline_assumed_years": []}  # a given date
    elif isinstance(data, CaseParked):
        change["parked_at"] = env.time  # the clock stands still from here
    elif isinstance(data, CaseResumed) and data.deadline is not None:
        # moved by the time it was parked (dispatch reckons it with the pack's policy)
        change |= {"deadline": data.deadline, "deadline_assumed_years": data.assumed_years}
    elif isinstance(data, CaseMerged):
        change["merged_into"] = data.into_case_id
    elif isinstance(data, CaseSplit):
        change["merged_into"] = None
    change |= dispute_change(data)
    if name in ("closed", "voided", "merged", "answered", "self_handled"):
        change[f"{name}_at"] = env.time
    if name == "dispute_closed":
        change["closed_at"] = env.time
    return change


def open_cells(data: CaseEvent, is_open: bool) -> Document:
    """The cell keys the duplicate search asks for (`open_near`): a case's while it is
    open (given by its report), none once it ended. Only an open case takes duplicates,
    and without the ended ones a cell's keys are as few as its open cases, however long
    the history (docs/benchmarks.md, "Growth"). Set with the state, as the newest version
    alone sets it: a late report of an ended case gives it none, of an open one its keys if
    it never had any (`_late` in the store). A reopened case gets its keys back from
    `near` (`reopening`)."""
    if not is_open:
        return {"open_near": []}
    if isinstance(data, CaseReported):
        return {"open_near": keys_of(data.kind, data.class_code, data.point.lon, data.point.lat)}
    return {}


def reopening(env: Envelope) -> tuple[Document, list[Document]] | None:
    """(filter, pipeline) giving a reopened case its cell keys back from `near` (its
    report's, kept for good), if it is open now (a newer ending stands)."""
    if not isinstance(env.data, CaseEvent) or transition_name(env.type) not in REOPENING:
        return None
    still_open = {"_id": env.data.case_id, "state": {"$in": sorted(OPEN_STATES)}}
    return still_open, [{"$set": {"open_near": "$near"}}]


def dispute_change(data: CaseEvent) -> Document:
    """Who holds a dispute (矛盾纠纷) now: its tier, the tier's office, the version that put
    it there, and the new tier's light (green, due at the deadline it was given)."""
    if isinstance(data, CaseReported) and data.kind == "dispute":
        return {"tier": "grid", "tier_office": data.grid_code, "tier_version": data.version}
    if isinstance(data, DisputeEscalated):
        light = {"light": "green", "deadline": data.deadline, "case_version": data.version}
        return {
            "tier": data.tier,
            "tier_office": data.office,
            "tier_version": data.version,
            "deadline": data.deadline,
            "sla.mediate": light,
        }
    return {}


def dispute_marks(env: Envelope) -> Document | None:
    """A tier overdue on a dispute (its breach) and a tier's explanation, kept as sets of
    offices: a tier's view lists the disputes it was overdue on and has not explained."""
    data = env.data
    if isinstance(data, SlaBreach) and data.stage.value == "mediate":
        return {"$addToSet": {"tiers_overdue": data.department}}
    if isinstance(data, DisputeExplained):
        return {"$addToSet": {"tiers_explained": data.office}}
    return None


def sla_change(data: SlaEvent) -> Document:
    """The traffic light of a stage: yellow on a warning, red on a breach."""
    light = {SlaWarning: "yellow", SlaBreach: "red", SlaEscalation: "red"}[type(data)]
    stage = f"sla.{data.stage.value}"
    change: Document = {
        f"{stage}.light": light,
        f"{stage}.deadline": data.deadline,
        f"{stage}.case_version": data.case_version,
    }
    if isinstance(data, SlaEscalation):
        change[f"{stage}.tier"] = data.tier
    return change


def request_change(data: DepartmentRequest | VoidRequest) -> tuple[Document, Document] | None:
    """(filter, $set) for a request (a department's, or an operator's void) or its denial:
    a request is pending while
    the case is still at the version it was made at; a denial settles that request."""
    if isinstance(data, REQUESTS):
        pending = {
            "request_id": data.request_id,
            "kind": REQUEST_KINDS[type(data)],
            "department": getattr(data, "department", None),  # an operator's void: none
            "reason": data.reason,
            "case_version": data.case_version,
            "deadline": getattr(data, "deadline", None),
        }
        return {"version": data.case_version}, {"pending_request": pending, "requested": True}
    if isinstance(data, DENIALS):
        settled = {"pending_request": None, "requested": False}
        return {"pending_request.request_id": data.request_id}, settled
    return None
