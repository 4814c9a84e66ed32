"""What each reader may see of a case. Pure.

Staff read the projected case; reporters' names and phone numbers are shown only to the
roles that may see them (`PERSONAL_DATA_ROLES`). A reporter follows their case through its
public view: state, case number, public notes — nothing about people.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

from gridloop.access import Principal
from gridloop.access import Role as Access
from gridloop.cases.record import STEPS, CaseRecord
from gridloop.contacts import Contact
from gridloop.follow import follow_token as follow_token
from gridloop.lifecycle import OPEN_STATES, State
from services.intake.reporting import PERSONAL_DATA_ROLES

Document = dict[str, Any]
CONTACT_FIELDS = tuple(Contact.model_fields)
# Timeline reasons a reporter may read: why a report was voided, merged or split.
PUBLIC_NOTES = frozenset({"case.voided", "case.merged", "case.split"})


def may_follow(key: bytes, case_id: str, token: str | None) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError).
    expected = follow_token(key, case_id).encode()
    return token is not None and hmac.compare_digest(expected, token.encode())


def _redacted(reporter: Any) -> Document:
    rid = reporter.get("id") if isinstance(reporter, dict) else None
    return {"id": rid, "hidden": "contacts are shown to hotline, supervision centre and admin"}


def joined(reporter: Document, contact: Contact | None) -> Document:
    """The reporter with their contact from the contact store (the events hold only its
    reference); `erased` when the reference names a contact no longer kept."""
    plain = {"id": reporter.get("id"), "contact": reporter.get("contact")}
    if contact is not None:
        return plain | contact.model_dump(exclude_none=True)
    if reporter.get("contact"):
        return plain | {"erased": True}
    return plain


def staff_view(
    record: CaseRecord, who: Principal, duplicates: int, contact: Contact | None = None
) -> Document:
    """The case for staff, the reporter's contact (`contact`, joined from the contact
    store) only if `who` may see it."""
    view = record.model_dump()
    view["duplicates"] = duplicates  # reports merged into this case
    if who.role in PERSONAL_DATA_ROLES:
        if view.get("reporter") is not None:
            view["reporter"] = joined(view["reporter"], contact)
        return view
    if view.get("reporter") is not None:
        view["reporter"] = _redacted(view["reporter"])
    timeline = []
    for entry in view.get("timeline", []):
        data = entry.get("data") or {}
        if "reporter" in data:
            entry = entry | {"data": data | {"reporter": _redacted(data["reporter"])}}
        timeline.append(entry)
    view["timeline"] = timeline
    return view


def personal_fields(view: Document) -> list[str]:
    """Which of the reporter's fields a staff view shows (their names, not their values):
    what the audit trail records of the read."""
    reporters = [view.get("reporter")]
    reporters += [(e.get("data") or {}).get("reporter") for e in view.get("timeline", [])]
    shown = {
        field
        for reporter in reporters
        if isinstance(reporter, dict)
        for field in CONTACT_FIELDS
        if reporter.get(field)
    }
    return [f"reporter.{field}" for field in sorted(shown)]


def department_may_read(record: CaseRecord, who: Principal) -> bool:
    """A department reaches only the cases dispatched to it (lead or assisting)."""
    return who.role is not Access.department or record.held_by(who.subject)


def media_case(
    who: Principal, uploader: Principal | None, cases: Sequence[CaseRecord], linked: Sequence[str]
) -> tuple[bool, str | None]:
    """Whether `who` may read an upload, and the case it is read as part of. Media access
    follows case access: staff but departments read every case, so every upload (`linked`:
    the ids of the cases naming it); a department reads the uploads of the cases it may
    read (`cases`: those of `linked` that are projected) and its own."""
    if who.role is not Access.department:
        return True, linked[0] if linked else None
    for record in cases:
        if department_may_read(record, who):
            return True, record.case_id
    # Its own: the department's, whoever of it signed in (a session names the person too).
    own = uploader is not None and (uploader.role, uploader.subject) == (who.role, who.subject)
    return own, None


def public_status(state: str) -> str:
    """Open311's two statuses: open while the loop runs, closed once it ended."""
    return "open" if State(state) in OPEN_STATES else "closed"


def public_view(record: CaseRecord, class_name: str, merged_into: CaseRecord | None) -> Document:
    """What a reporter sees of their case: no names, no phones, no staff ids."""
    notes = [
        {"type": e.type, "at": e.at, "note": e.reason}
        if e.type in PUBLIC_NOTES
        else {"type": e.type, "at": e.at}
        for e in record.timeline
        if e.type in STEPS  # lifecycle steps only; annotations and SLA facts are internal
    ]
    view: Document = {
        "case_id": record.case_id,
        "case_number": record.case_number,
        "state": record.state.value,
        "status": public_status(record.state),
        "class_name": class_name,
        "description": record.description,
        "reported_at": record.reported_at,
        "updated_at": record.updated_at,
        "timeline": notes,
    }
    if merged_into is not None:
        # A duplicate follows the case it was merged into.
        view["merged_into"] = {
            "case_id": merged_into.case_id,
            "case_number": merged_into.case_number,
            "state": merged_into.state.value,
            "status": public_status(merged_into.state),
        }
    return view
