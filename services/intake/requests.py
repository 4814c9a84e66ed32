"""What intake's clients send (the HTTP edge's request models), and the commands they make.

Validated by pydantic at the edge (limits in `schemas.limits`); the core decides on the plain
commands of `commands.py`, never on these.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from gridloop.access import Principal
from gridloop.contacts import Contact, contact_id
from schemas.events import Channel, Kind, Point, Reporter, Urgency
from schemas.limits import (
    Address,
    CaseRef,
    ClassCode,
    ComponentId,
    Description,
    Email,
    GridCode,
    MediaIds,
    Note,
    OptionalPersonId,
    PersonId,
    PersonName,
    Phone,
    Reason,
    WechatId,
)
from services.intake import commands as do


class ReporterIn(BaseModel):
    """Who reported, as the client says (the credential's holder may override `id`), and
    how to reach them: kept in the contact store, never in the events."""

    model_config = ConfigDict(extra="forbid")
    id: OptionalPersonId = None
    name: PersonName = None
    phone: Phone = None
    address: Address = None  # where the reporter can be reached, not the problem's place
    wechat: WechatId = None
    email: Email = None
    # Told of the case's progress by message (filed, dispatched, handled, closed) through
    # the first channel of the pack their contact can take; false: never (opted out).
    messages: bool = True

    def contact(self) -> Contact:
        return Contact(
            name=self.name,
            phone=self.phone,
            address=self.address,
            wechat=self.wechat,
            email=self.email,
            opted_out=not self.messages,
        )


class ReportIn(BaseModel):
    """A report as a client submits it.

    Where: a `point`, or a coded `component_id` (then point, grid, kind and class come from
    the inventory), or for the hotline a `grid_code` the operator located the `address` in.
    """

    model_config = ConfigDict(extra="forbid")
    channel: Channel
    kind: Kind | None = None
    class_code: ClassCode | None = None
    component_id: ComponentId | None = None
    point: Point | None = None
    grid_code: GridCode | None = None
    address: Address = None
    description: Description
    reporter: ReporterIn = Field(default_factory=ReporterIn)
    media: MediaIds = []
    # Graded by staff (supervisor, hotline): one the city's sla.yaml names; none is `normal`.
    urgency: Urgency | None = None


class VerificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirmed: bool
    note: Note = None
    media: MediaIds = []  # photos of what the supervisor found
    supervisor_id: PersonId | None = None  # optional: the credential says who


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    passed: bool
    note: Note = None
    supervisor_id: PersonId | None = None
    media: MediaIds = []  # photos of what the supervisor found on site (核查照片)


class FileIn(BaseModel):
    """A supervision-centre operator files a case (立案), correcting its class if the
    reporter chose the wrong one (another class of the city's catalogue)."""

    model_config = ConfigDict(extra="forbid")
    note: Note = None
    kind: Kind | None = None  # with class_code: the corrected class
    class_code: ClassCode | None = None


class VoidIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class VoidDecisionIn(BaseModel):
    """The shift lead's answer to a void request: a comment to approve, a reason to deny
    (required there)."""

    model_config = ConfigDict(extra="forbid")
    reason: Note = None


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into_case_id: CaseRef
    reason: Note = None


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


def report_of(report: ReportIn, case_id: str, who: Principal) -> do.Report:
    """The command a submitted report makes: the reporter's contact beside its events,
    which carry only its reference."""
    contact = report.reporter.contact()
    known = not contact.empty()
    return do.Report(
        case_id=case_id,
        who=who,
        channel=report.channel,
        description=report.description,
        kind=report.kind,
        class_code=report.class_code,
        component_id=report.component_id,
        point=report.point,
        grid_code=report.grid_code,
        address=report.address,
        reporter=Reporter(id=report.reporter.id, contact=contact_id(case_id) if known else None),
        contact=contact,
        media=tuple(report.media),
        urgency=report.urgency,
    )


Rating = Annotated[int, Field(strict=True, ge=1, le=5)]


class FeedbackIn(BaseModel):
    """A resident's rating: 1 very dissatisfied … 5 very satisfied, and what they said."""

    model_config = ConfigDict(extra="forbid")
    rating: Rating
    comment: Note = None
