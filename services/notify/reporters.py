"""Telling reporters (告知): which events a reporter is told of, what they are told (the
pack's Chinese templates), through which channel, and to which address. Pure.

The message is decided when the event is read and kept without any address: the events and
the projection name the reporter's contact by its `ct_…` reference only, and the delivery
does too. The address is looked up in the contact store when the message is sent
(`service.py`), so an erasure or an opt-out before then leaves nothing to send.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack
from gridloop.citypack.messages import TOLD, MessagePolicy
from gridloop.contacts import Contact
from schemas.envelope import Envelope
from schemas.events import (
    CaseClosed,
    CaseDispatched,
    CaseFiled,
    CaseHandled,
    CaseReported,
    event_name,
)

REPORTER = "reporter"  # the recipient's prefix in `deliveries.department`: `reporter:sms`
TOLD_EVENTS = (CaseFiled, CaseDispatched, CaseHandled, CaseClosed)


def concerns_reporters(env: Envelope) -> bool:
    return isinstance(env.data, TOLD_EVENTS)


class Untold:
    """The cases known to have no reporter to tell, learnt from their `reported` events as
    they pass (notify reads the reports topic): reported with no contact, a case never gets
    one, so its later events are no reason to read it (a patrolling supervisor's findings,
    most cases of 数字城管). The newest `most`; a case not known (forgotten, or reported
    before a restart) is read, as every case was before."""

    def __init__(self, most: int = 100_000) -> None:
        self.most = most
        self._cases: OrderedDict[str, None] = OrderedDict()

    def learn(self, envs: Iterable[Envelope]) -> None:
        for env in envs:
            if isinstance(env.data, CaseReported) and not _reachable(env.data):
                self._cases[env.data.case_id] = None
                self._cases.move_to_end(env.data.case_id)
                if len(self._cases) > self.most:
                    self._cases.popitem(last=False)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._cases

    def __len__(self) -> int:
        return len(self._cases)


def _reachable(reported: CaseReported) -> bool:
    """Whether the reporter left a contact: its reference, or (an event from before contacts
    left the log) a name or a phone that `gridloop contacts migrate` keeps under one."""
    reporter = reported.reporter
    return bool(reporter.contact or reporter.name or reporter.phone)


def recipient(channel: str) -> str:
    """The delivery's recipient key for a reporter reached by `channel` (never a department
    code: those are upper case without a colon)."""
    return f"{REPORTER}:{channel}"


def address_of(channel: str, contact: Contact) -> str | None:
    """The contact's address on `channel`, if it gave one."""
    return {"sms": contact.phone, "wechat": contact.wechat, "email": contact.email}.get(channel)


def channel_for(policy: MessagePolicy, contact: Contact | None) -> str | None:
    """The first of the pack's channels the contact can take; None for a reporter who is
    not told (no contact kept, opted out, or no address any channel takes)."""
    if contact is None or contact.opted_out:
        return None
    return next((c.kind for c in policy.channels if address_of(c.kind, contact)), None)


@dataclass(frozen=True)
class ReporterNotice:
    """One message for a case's reporter, without their address."""

    contact: str  # the `ct_…` reference
    channel: str
    message: dict[str, Any]


def reporter_message(
    env: Envelope, case: CaseRecord, pack: CityPack, follow_url: str
) -> dict[str, Any] | None:
    """What the reporter of `case` is told of `env` (`{type, timestamp, data}`), or None
    when they are told nothing of it."""
    policy, data = pack.messages, env.data
    name = event_name(env.type)
    if policy is None or name not in TOLD or case.reporter is None:
        return None
    if not case.reporter.contact:
        return None
    number = (data.case_number if isinstance(data, CaseFiled) else None) or case.case_number
    department = data.department if isinstance(data, CaseDispatched | CaseHandled) else None
    department = department or case.department
    dept = pack.departments.get(department or "")
    cls = pack.classes.get((case.kind, case.class_code or "")) if case.kind else None
    values = {
        "case_number": number or case.case_id,
        "case_id": case.case_id,
        "class_name": cls.name if cls else case.class_code or "",
        "department_name": dept.name if dept else department or "",
        "follow_url": follow_url,
    }
    text = policy.render(name, values)
    body = {"case_id": case.case_id, "case_number": number, "text": text}
    return {"type": name, "timestamp": env.time.isoformat(), "data": body}


def addressed(body: str, channel: str, address: str) -> str:
    """The stored message (`body`, JSON) as sent to a provider: with its recipient."""
    message = json.loads(body)
    message["channel"], message["to"] = channel, address
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def masked(address: str) -> str:
    """An address as an operator may see it: a phone's first 3 and last 4 digits
    (138****5678), an email's first letter and domain, a WeChat id's first two letters."""
    if "@" in address:
        local, domain = address.split("@", 1)
        return f"{local[:1]}***@{domain}"
    if sum(c.isdigit() for c in address) >= 7:
        return f"{address[:3]}****{address[-4:]}"
    return f"{address[:2]}***"
