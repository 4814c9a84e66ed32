"""What departments and the command centre ask of a case: plain typed values, built by the
HTTP edge from a request and its credential, decided by `core.decide`.

Department actions (lead, or assisting where said): 签收 acknowledge, 处理反馈 handle,
回退 return, 延期 ask for an extension, 挂账 ask to park, resume, explain an overdue case.
The command centre: dispatch by hand (派遣, 改派), answer a pending request, resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas.events import Actor

RequestKind = Literal["extension", "parking", "return", "resume"]


@dataclass(frozen=True)
class Acknowledge:
    """签收: the department confirms it received the case (lead or assisting)."""

    case_id: str
    department: str
    handler_id: str


@dataclass(frozen=True)
class Handle:
    """处理反馈: the problem is handled, with notes and links to photos (the lead only)."""

    case_id: str
    department: str
    handler_id: str
    note: str | None = None
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class Return:
    """回退: not this department's case, and why; back to the command centre (at once, or
    once the shift lead approves, where the city pack says so: then `request_id` names
    the request)."""

    case_id: str
    department: str
    handler_id: str
    reason: str
    request_id: str = ""


@dataclass(frozen=True)
class RequestExtension:
    """延期申请: a later deadline, which the command centre approves or denies."""

    case_id: str
    department: str
    handler_id: str
    deadline: datetime
    reason: str
    request_id: str


@dataclass(frozen=True)
class RequestParking:
    """挂账申请: pause the clock, once the command centre approves."""

    case_id: str
    department: str
    handler_id: str
    reason: str
    request_id: str


@dataclass(frozen=True)
class Resume:
    """A parked case's clock runs again: its lead department (`department`) or the command
    centre (no department). A department's resumption waits for the shift lead where the
    city pack says so (挂账恢复申请): then `request_id` names the request."""

    case_id: str
    actor: Actor
    reason: str | None = None
    department: str | None = None
    request_id: str = ""


@dataclass(frozen=True)
class Explain:
    """An overdue case's explanation, owed by its department (Zhoushan's rule)."""

    case_id: str
    department: str
    handler_id: str
    explanation: str


@dataclass(frozen=True)
class DispatchByHand:
    """派遣 / 改派: a dispatcher sends the case to a lead and assisting departments."""

    case_id: str
    dispatcher: str
    department: str
    reason: str
    assisting: tuple[str, ...] = ()
    deadline: datetime | None = None  # default: the class's handling limit from now
    person: str | None = None  # the person signed in who sent it (their session), if any


@dataclass(frozen=True)
class AnswerRequest:
    """The shift lead (值班长) approves or denies the case's pending extension, parking,
    return or resume request; approving an extension may give another deadline than the one asked
    for. `dispatcher` is the person who decides."""

    case_id: str
    kind: RequestKind
    approve: bool
    dispatcher: str
    reason: str | None = None
    deadline: datetime | None = None
    person: str | None = None  # the person signed in who sent it (their session), if any


@dataclass(frozen=True)
class Urge:
    """督办: the shift lead urges the department that holds the case, which owes a reply by
    the pack's reply limit."""

    case_id: str
    lead: str
    message: str
    urge_id: str


@dataclass(frozen=True)
class ReplyToUrge:
    """The urged department's reply to the open 督办."""

    case_id: str
    department: str
    handler_id: str
    reply: str


Command = (
    Acknowledge
    | Handle
    | Return
    | RequestExtension
    | RequestParking
    | Resume
    | Explain
    | DispatchByHand
    | AnswerRequest
    | Urge
    | ReplyToUrge
)
