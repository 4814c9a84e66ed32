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

    light: Literal["green", "yellow", "red"]  # green: a dispute's new tier (its clock anew)
    deadline: datetime
    case_version: int
    tier: str | None = None


class PendingRecord(_Read):
    """A department's request awaiting the shift lead (值班长)."""

    request_id: str
    kind: Literal["extension", "parking", "return", "resume", "void"]
    department: str | None = None  # None: an intake operator's void request
    reason: str
    case_version: int
    deadline: datetime | None = None


class Urge(_Read):
    """A 督办 as the timeline shows it: who urged which department, with what message, the
    reply it owes by `reply_by`, and the reply if it came."""

    urge_id: str
    department: str
    message: str
    reply_by: datetime
    urged_at: datetime
    by: Actor | None = None
    reply: str | None = None
    replied_at: datetime | None = None
    replied_by: Actor | None = None

    def missed(self, now: datetime) -> bool:
        """The reply is late: none by its deadline, or one after it."""
        if self.replied_at is not None:
            return self.replied_at > self.reply_by
        return now > self.reply_by


def _step(entry: TimelineEntry) -> str:
    # `gridloop.case.urged` or `urged`: the last part names it, however the timeline spells it.
    return entry.type.rsplit(".", 1)[-1]


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
    parked_at: datetime | None = None  # when it was last parked (挂账): its clock stood still
    answered_at: datetime | None = None  # answered directly (直接答复)
    self_handled_at: datetime | None = None  # fixed on the spot (自处置)
    sla: dict[str, StageClock] = {}
    timeline: list[TimelineEntry] = []
    # A dispute (矛盾纠纷): the tier holding it, its office, the version that put it there;
    # the offices overdue on it (their breach) and those that explained.
    tier: str | None = None
    tier_office: str | None = None
    tier_version: int | None = None
    tiers_overdue: list[str] = []
    tiers_explained: list[str] = []

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

    def urges(self) -> list[Urge]:
        """Every 督办 of the case, oldest first, each with its reply if one came."""
        found: dict[str, Urge] = {}
        for entry in sorted(self.timeline, key=lambda e: e.at):
            data, step = entry.data, _step(entry)
            if step == "urged" and "urge_id" in data:
                found[data["urge_id"]] = Urge(
                    urge_id=data["urge_id"],
                    department=data["department"],
                    message=data["message"],
                    reply_by=data["reply_by"],
                    urged_at=entry.at,
                    by=entry.actor,
                )
            elif step == "urge_replied" and data.get("urge_id") in found:
                urged = found[data["urge_id"]]
                found[urged.urge_id] = urged.model_copy(
                    update={
                        "reply": data["reply"],
                        "replied_at": entry.at,
                        "replied_by": entry.actor,
                    }
                )
        return list(found.values())

    def open_urge(self) -> Urge | None:
        """The 督办 still awaiting its reply, if any."""
        return next((u for u in reversed(self.urges()) if u.reply is None), None)
