"""The webhook a department receives: `{type, timestamp, data}`, `data` by type.

The contract with departments' systems (docs/departments.md documents every field, and a
test holds the two together). Every message carries the case's facts (`CaseFacts`): enough
to act on without a second call — what (class code and name, urgency, description), where
(GeoJSON point, address or the nearest landmark, grid and street) and the photos (signed
links that expire). `type` is the event's name (`schemas.events.event_name`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.events import (
    CaseDispatched,
    CaseExtended,
    CaseParked,
    CaseResumed,
    ExtensionDenied,
    Kind,
    ParkingDenied,
    RoutingBasis,
    SlaBreach,
    SlaEscalation,
    event_name,
)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GeoPoint(_Out):
    """A GeoJSON point: `[lon, lat]` (WGS 84)."""

    type: Literal["Point"]
    coordinates: tuple[float, float]


class Landmark(_Out):
    """The case's component (部件) or, lacking one, the inventory's nearest in its grid."""

    name: str
    component_id: str
    distance_m: int  # from the case's point, rounded


class MediaLink(_Out):
    """A photo or voice note of the case: a signed link, readable without a credential
    until `expires_at`."""

    media_id: str
    url: str
    expires_at: datetime


class CaseFacts(_Out):
    """What every message says of its case (null where the case has no such fact)."""

    case_id: str
    case_number: str | None
    kind: Kind | None
    class_code: str | None
    class_name: str | None  # the city pack's name of the class
    urgency: str | None  # null: the city's normal urgency
    description: str | None
    point: GeoPoint | None
    address: str | None  # as the reporter gave it; null for most supervisors' reports
    landmark: Landmark | None  # null when the grid has no component in the inventory
    grid_code: str | None
    grid_name: str | None
    street: str | None  # the street (街道) of the grid, by name
    media: list[MediaLink]


class DispatchedData(CaseFacts):
    """`case.dispatched`: to the lead and to each assisting department."""

    version: int
    department: str  # the lead
    role: Literal["lead", "assisting"]  # the receiver's
    assisting: list[str]
    deadline: datetime
    assumed_years: list[int]  # years the deadline was reckoned into without a calendar
    basis: RoutingBasis | None  # which kind of routing rule decided (docs/departments.md)
    rule: str


class DecisionData(CaseFacts):
    """`case.extended`, `case.parked`, `case.resumed`: the case moved; `case.extension_denied`,
    `case.parking_denied`: a request refused (no version: the case did not move)."""

    version: int | None
    reason: str | None
    request_id: str | None  # the request decided (extended, parked, denials)
    deadline: datetime | None  # extended: the new one; resumed: moved by the parking
    assumed_years: list[int]


class SlaData(CaseFacts):
    """`sla.breach` (to the department owning the deadline), `sla.escalation` (to the office
    of the tier)."""

    case_version: int
    stage: str
    department: str
    deadline: datetime
    tier: str | None  # escalations only


class Webhook(_Out):
    """One message, as posted."""

    type: str
    timestamp: datetime
    data: DispatchedData | DecisionData | SlaData


DATA_OF: dict[str, type[CaseFacts]] = {
    event_name(CaseDispatched.ce_type): DispatchedData,
    **{
        event_name(t.ce_type): DecisionData
        for t in (CaseExtended, CaseParked, CaseResumed, ExtensionDenied, ParkingDenied)
    },
    event_name(SlaBreach.ce_type): SlaData,
    event_name(SlaEscalation.ce_type): SlaData,
}


def validate(message: dict[str, object]) -> Webhook:
    """A message checked against the model of its type (ValueError if it is not one)."""
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in DATA_OF:
        raise ValueError(f"no webhook of type {kind!r}")
    data = DATA_OF[kind].model_validate(message.get("data"))
    return Webhook(type=kind, timestamp=message.get("timestamp"), data=data)
