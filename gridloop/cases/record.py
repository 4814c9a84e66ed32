"""A case as its projection records it, typed: what every reader shows and filters on.

The projections service writes these documents (`services/projections`); readers get them
through `gridloop.cases.reader.CaseReader` as `CaseRecord`s. Internal fields of the
projection (the duplicate search's `near` keys) are not part of the record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gridloop.lifecycle import TRANSITIONS, State
from schemas.events import (
    NAMESPACE,
    Actor,
    CaseAcknowledged,
    CaseDispatched,
    Channel,
    Kind,
    Point,
    Reporter,
    event_name,
)

ACKNOWLEDGED = event_name(CaseAcknowledged.ce_type)
DISPATCHED = event_name(CaseDispatched.ce_type)
# The lifecycle's steps as the timeline names them (`case.filed`), annotations and SLA
# facts aside.
STEPS = frozenset(event_name(f"{NAMESPACE}case.{name}") for name in TRANSITIONS)


def timeline_type(stored: str) -> str:
    """The public name of a timeline entry's type: the projection stores a lifecycle step
    by its transition (`filed`) and the rest in full (`gridloop.sla.breach`); readers see
    one vocabulary, the webhook's (`case.filed`, `sla.breach`)."""
    return event_name(stored if "." in stored else f"{NAMESPACE}case.{stored}")


def geojson(point: Any) -> Any:
    """An event's `{lon, lat}` as a GeoJSON point; anything else as it is."""
    if isinstance(point, dict) and set(point) == {"lon", "lat"}:
        return {"type": "Point", "coordinates": [point["lon"], point["lat"]]}
    return point


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GeoPoint(_Read):
    """A point as GeoJSON: `[lon, lat]`."""

    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float]

    @property
    def point(self) -> Point:
        return Point(lon=self.coordinates[0], lat=self.coordinates[1])


class TimelineEntry(_Read):
    """One event of the case: who did what, when, at which version, and why."""

    event_id: str
    type: str  # `case.filed`, `case.acknowledged`, `sla.breach`: `timeline_type`
    version: int
    at: datetime
    actor: Actor | None = None
    reason: str | None = None
    data: dict[str, Any] = {}

    @field_validator("type", mode="before")
    @classmethod
    def _public_type(cls, stored: str) -> str:
        return timeline_type(stored)

    @field_validator("data", mode="before")
    @classmethod
    def _public_data(cls, data: dict[str, Any]) -> dict[str, Any]:
        # A point is GeoJSON in every read, the report's as the case's.
        return data | {"point": geojson(data["point"])} if "point" in data else data


class StageClock(_Read):
    """A stage's traffic light (`sla.<stage>`), as the SLA engine's last event left it."""

    light: Literal["yellow", "red"]
    deadline: datetime
    case_version: int
    tier: str | None = None


class PendingRecord(_Read):
    """A department's request awaiting the command centre."""

    request_id: str
    kind: Literal["extension", "parking"]
    department: str
    reason: str
    case_version: int
    deadline: datetime | None = None


class CaseRecord(_Read):
    """The projected case."""

    case_id: str = Field(validation_alias="_id")
    state: State
    version: int
    channel: Channel | None = None
    kind: Kind | None = None
    class_code: str | None = None
    grid_code: str | None = None
    component_id: str | None = None
    point: GeoPoint | None = None
    description: str | None = None
    address: str | None = None
    reporter: Reporter | None = None
    media: list[str] = []
    urgency: str | None = None
    verifier: str | None = None
    verification_due: datetime | None = None
    case_number: str | None = None
    department: str | None = None
    assisting: list[str] = []
    deadline: datetime | None = None
    deadline_assumed_years: list[int] = []
    pending_request: PendingRecord | None = None
    merged_into: str | None = None
    reported_at: datetime | None = None
    filed_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    voided_at: datetime | None = None
    merged_at: datetime | None = None
    sla: dict[str, StageClock] = {}
    timeline: list[TimelineEntry] = []

    def held_by(self, department: str) -> bool:
        """Whether `department` leads or assists the case."""
        return department == self.department or department in self.assisting

    def acknowledged_by(self, department: str) -> bool:
        """Whether `department` acknowledged (签收) the case since it was last dispatched."""
        for entry in reversed(self.timeline):
            if entry.type == DISPATCHED:
                return False
            if entry.type == ACKNOWLEDGED and entry.data.get("department") == department:
                return True
        return False
