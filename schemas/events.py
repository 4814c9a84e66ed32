"""Lifecycle and SLA events (the data part of each CloudEvent).

A lifecycle event (`CaseEvent`) is one transition of the closed loop and carries the case's
`version` after it: producers derive it from the state they acted on, the projection keeps
the highest. SLA events annotate a case without moving it, so they carry the version they
were computed from instead.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from schemas.limits import Latitude, Longitude

CaseId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Version = Annotated[int, Field(ge=1)]
Text = Annotated[str, Field(max_length=2000)]
Kind = Literal["component", "event", "dispute"]  # 部件, 事件 or 矛盾纠纷 (owned by a tier office)
DepartmentCode = Annotated[str, Field(min_length=1, max_length=64)]
RequestId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
PhotoUrl = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^https?://")]
# Which routing rule chose the department (most specific first), or a dispatcher's hand.
RoutingBasis = Literal["component", "location", "class_default", "street_office", "manual"]
# An uploaded photo or voice note held by intake (GridFS id).
MediaId = Annotated[str, Field(pattern=r"^[0-9a-f]{24}$")]
MediaIds = Annotated[list[MediaId], Field(max_length=20)]
# How urgent a report is graded (`normal`, `urgent`, …: the city pack's sla.yaml names them);
# with the class, it decides the stage limits and the escalation ladder.
Urgency = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")]
# Years a deadline reaches that nobody supplied a calendar for: reckoned on weekends alone,
# so the deadline is an estimate (the city pack can supply the year).
AssumedYears = Annotated[list[int], Field(max_length=10)]


class Role(StrEnum):
    citizen = "citizen"
    hotline = "hotline"
    supervisor = "supervisor"
    supervision_centre = "supervision_centre"
    command_centre = "command_centre"
    shift_lead = "shift_lead"  # 值班长: the command centre's approvals and 督办
    department = "department"
    # The grid's people (网格员 / 组团式服务): a grid manager or a member of the grid's team.
    grid_staff = "grid_staff"
    tier_office = "tier_office"  # a dispute-mediating office (矛盾纠纷调处)
    system = "system"


class Channel(StrEnum):
    """Where a report came in: supervisors' handhelds, the hotline, the website/app."""

    supervisor = "supervisor"
    hotline = "hotline"
    website = "website"


class Actor(BaseModel):
    """Who did it: every transition records who, when (ce_time) and why (`reason`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    role: Role
    id: Annotated[str, Field(min_length=1, max_length=64)]
    # The person signed in to the workbench who did it (their username), when `id` names a
    # credential several people share (the supervision centre's, say): evaluation scores the
    # centre's own staff per person (issue 18). None: a machine credential, or older events.
    person: Annotated[str | None, Field(min_length=1, max_length=64)] = None

    @model_serializer(mode="wrap")
    def _without_no_person(self, dump: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without `person` when none: an event as written before it (and read by a
        consumer that does not know it yet) is byte for byte the same."""
        found: dict[str, Any] = dump(self)
        if found.get("person") is None:
            found.pop("person", None)
        return found


class Point(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    lon: Longitude
    lat: Latitude


class Reporter(BaseModel):
    """Who reported: their account or the channel (`id`), and a reference to their contact
    (`contact`, an opaque id) in the contact store. Names, phones, addresses and WeChat ids
    never enter the log (docs/personal-data.md); `name` and `phone` remain only so that
    events written before are still read (the projections drop them)."""

    model_config = ConfigDict(extra="forbid")
    id: Annotated[str | None, Field(max_length=64)] = None
    contact: Annotated[str | None, Field(pattern=r"^ct_[0-9a-f]{32}$")] = None
    name: Annotated[str | None, Field(max_length=100)] = None  # legacy: never written now
    phone: Annotated[str | None, Field(max_length=32)] = None  # legacy: never written now


NAMESPACE = "gridloop."


def event_name(ce_type: str) -> str:
    """The name an integrator reads for an event type, in every timeline, webhook and reply:
    the CloudEvents type without the namespace (`gridloop.case.filed` → `case.filed`)."""
    return ce_type.removeprefix(NAMESPACE)


class EventData(BaseModel):
    """Base of every event's data; subclasses set `ce_type`."""

    model_config = ConfigDict(extra="forbid")
    ce_type: ClassVar[str]
    case_id: CaseId

    def identity(self) -> str:
        """What makes two events the same fact; the event id is derived from it."""
        raise NotImplementedError


class CaseEvent(EventData):
    version: Version
    actor: Actor
    reason: Text | None = None

    def identity(self) -> str:
        # One transition of a given type per case version: a retried or re-derived
        # event gets the same id, so consumers drop it as a duplicate.
        return f"{self.case_id}/{self.ce_type}/{self.version}"


class CaseReported(CaseEvent):
    """A problem reported (信息收集): by a supervisor, the hotline or the website."""

    # The coded component instance (16 or 17 digits), when the problem is a component.
    component_id: Annotated[str | None, Field(pattern=r"^\d{16,17}$")] = None
    ce_type: ClassVar[str] = "gridloop.case.reported"
    channel: Channel
    class_code: Annotated[str, Field(pattern=r"^\d{4,5}$")]
    kind: Kind
    point: Point
    grid_code: Annotated[str, Field(pattern=r"^\d{14,15}$")]
    description: Text
    reporter: Reporter = Field(default_factory=Reporter)
    media: MediaIds = []  # photos and voice notes
    address: Text | None = None  # as the caller gave it (hotline, website)
    # A citizen report is a verification task (核实) for its grid's supervisor, due then.
    verifier: Annotated[str | None, Field(max_length=64)] = None
    verification_due: datetime | None = None
    urgency: Urgency | None = None  # graded by staff; none: the city's `normal`


class CaseVerified(CaseEvent):
    """A supervisor confirmed a citizen report on site (核实)."""

    ce_type: ClassVar[str] = "gridloop.case.verified"
    note: Text | None = None
    media: MediaIds = []  # the supervisor's photos of the confirmed problem


class CaseFiled(CaseEvent):
    """The supervision centre filed the case (立案)."""

    ce_type: ClassVar[str] = "gridloop.case.filed"
    component_id: Annotated[str | None, Field(pattern=r"^\d{16,17}$")] = None
    # class + date + sequence, unique in the district, e.g. B0101-20260301-0007 (B 部件, S 事件)
    case_number: Annotated[str | None, Field(max_length=40)] = None
    kind: Kind
    class_code: Annotated[str, Field(pattern=r"^\d{4,5}$")]
    grid_code: Annotated[str, Field(pattern=r"^\d{14,15}$")]


class CaseVoided(CaseEvent):
    """The report was invalid (作废); `reason` says why."""

    ce_type: ClassVar[str] = "gridloop.case.voided"
    # The operator's void request the shift lead approved (where the pack asks for it).
    request_id: RequestId | None = None


class CaseAnswered(CaseEvent):
    """A consultation (咨询) answered directly (直接答复) from the city's knowledge base, by a
    hotline or supervision-centre operator: closed without filing or dispatch."""

    ce_type: ClassVar[str] = "gridloop.case.answered"
    knowledge_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]
    answer: Text  # the entry's answer as it was given (the pack's entry may change later)


class CaseSelfHandled(CaseEvent):
    """自处置: the supervisor or grid manager who reported a minor problem fixed it on the
    spot (the report's `media` are the photos before, these the photos after): closed
    without filing or dispatch, counted apart in evaluation."""

    ce_type: ClassVar[str] = "gridloop.case.self_handled"
    # The photos after (intake requires one; no minimum here: evaluation stores events
    # with their media blanked, and reads them back).
    media: MediaIds
    note: Text | None = None


class CaseMerged(CaseEvent):
    """A duplicate of another open case."""

    ce_type: ClassVar[str] = "gridloop.case.merged"
    into_case_id: CaseId


class CaseSplit(CaseEvent):
    """A merged report split off its case by hand: a case of its own again (reported)."""

    ce_type: ClassVar[str] = "gridloop.case.split"
    from_case_id: CaseId


class CaseDispatched(CaseEvent):
    """The command centre sent the case to its owner with a handling deadline (任务派遣)."""

    ce_type: ClassVar[str] = "gridloop.case.dispatched"
    department: DepartmentCode
    deadline: datetime
    rule: Annotated[str, Field(max_length=200)]  # which routing rule chose the department
    # Joint cases (联合处置): departments that assist the lead `department`.
    assisting: Annotated[list[DepartmentCode], Field(max_length=10)] = []
    basis: RoutingBasis | None = None
    # A deadline reckoned (not given by hand) into a year nobody supplied a calendar for.
    assumed_years: AssumedYears = []


class CaseReturned(CaseEvent):
    """The department says the case is not theirs (回退)."""

    ce_type: ClassVar[str] = "gridloop.case.returned"
    department: DepartmentCode
    # The department's return request the shift lead approved (where the pack asks for it).
    request_id: RequestId | None = None


class CaseExtended(CaseEvent):
    """The handling deadline moved (延期)."""

    ce_type: ClassVar[str] = "gridloop.case.extended"
    deadline: datetime
    request_id: RequestId | None = None  # the department's request the command centre approved


class CaseParked(CaseEvent):
    """The case is parked (挂账): its clock pauses until resumed."""

    ce_type: ClassVar[str] = "gridloop.case.parked"
    request_id: RequestId | None = None  # the department's request the command centre approved


class CaseResumed(CaseEvent):
    """A parked case's handling clock runs again, due at `deadline`: the handling time that
    was left when it was parked, counted on from the resumption on the class's clock."""

    ce_type: ClassVar[str] = "gridloop.case.resumed"
    # None when the case had no known deadline (and in events from before it was carried).
    deadline: datetime | None = None
    # The moved deadline was reckoned into a year nobody supplied a calendar for.
    assumed_years: AssumedYears = []
    # The department's resume request the shift lead approved (where the pack asks for it).
    request_id: RequestId | None = None


class CaseHandled(CaseEvent):
    """The department reports the problem handled (处理反馈)."""

    ce_type: ClassVar[str] = "gridloop.case.handled"
    department: DepartmentCode
    note: Text | None = None
    photos: Annotated[list[PhotoUrl], Field(max_length=20)] = []


class CaseChecked(CaseEvent):
    """A supervisor checked the handled case on site (核查)."""

    ce_type: ClassVar[str] = "gridloop.case.checked"
    passed: bool
    note: Text | None = None
    media: MediaIds = []  # the supervisor's photos of the site as checked (核查照片)


class CaseClosed(CaseEvent):
    """The case is closed (结案)."""

    ce_type: ClassVar[str] = "gridloop.case.closed"


class CaseReworked(CaseEvent):
    """The check failed or the resident was dissatisfied: handle again (返工)."""

    ce_type: ClassVar[str] = "gridloop.case.rework"


class FeedbackGiven(CaseEvent):
    """A resident rated the handled case (满意度)."""

    ce_type: ClassVar[str] = "gridloop.case.feedback"
    rating: Annotated[int, Field(ge=1, le=5)]
    comment: Text | None = None


class CaseAnnotation(EventData):
    """A fact about a case that does not move it, as of `case_version`."""

    case_version: Version
    actor: Actor

    def identity(self) -> str:
        return f"{self.case_id}/{self.ce_type}/{self.case_version}"


class CaseExplained(CaseAnnotation):
    """The department explains an overdue case: every overdue case gets an explicit answer
    (Zhoushan's rule)."""

    ce_type: ClassVar[str] = "gridloop.case.explained"
    department: DepartmentCode
    explanation: Annotated[str, Field(min_length=1, max_length=2000)]


class CaseAcknowledged(CaseAnnotation):
    """The department confirms it received the dispatched case (签收): the lead and each
    assisting department, once per dispatch."""

    ce_type: ClassVar[str] = "gridloop.case.acknowledged"
    department: DepartmentCode

    def identity(self) -> str:
        # The lead's and an assisting department's acknowledgements are two facts.
        return f"{super().identity()}/{self.department}"


class DepartmentRequest(CaseAnnotation):
    """A department asks the command centre for something; `request_id` names the request,
    so a second request after a denial is a new fact, and a retried one is not."""

    department: DepartmentCode
    request_id: RequestId
    reason: Annotated[str, Field(min_length=1, max_length=2000)]

    def identity(self) -> str:
        return f"{self.case_id}/{self.ce_type}/{self.request_id}"


class ExtensionRequested(DepartmentRequest):
    """The department asks for a later deadline (延期申请); approval is `case.extended`."""

    ce_type: ClassVar[str] = "gridloop.case.extension_requested"
    deadline: datetime


class ExtensionDenied(DepartmentRequest):
    """The command centre refuses an extension; `reason` says why."""

    ce_type: ClassVar[str] = "gridloop.case.extension_denied"


class ParkingRequested(DepartmentRequest):
    """The department asks to park the case (挂账申请); approval is `case.parked`."""

    ce_type: ClassVar[str] = "gridloop.case.parking_requested"


class ParkingDenied(DepartmentRequest):
    """The command centre refuses to park the case; `reason` says why."""

    ce_type: ClassVar[str] = "gridloop.case.parking_denied"


class ReturnRequested(DepartmentRequest):
    """The department asks to return the case (回退申请) where the city pack makes a return
    wait for the shift lead (值班长); approval is `case.returned`."""

    ce_type: ClassVar[str] = "gridloop.case.return_requested"


class ReturnDenied(DepartmentRequest):
    """The shift lead refuses the return: the case stays with the department; `reason`
    says why."""

    ce_type: ClassVar[str] = "gridloop.case.return_denied"


class ResumeRequested(DepartmentRequest):
    """The department asks to resume a parked case (挂账恢复申请) where the city pack makes
    a resumption wait for the shift lead; approval is `case.resumed`."""

    ce_type: ClassVar[str] = "gridloop.case.resume_requested"


class ResumeDenied(DepartmentRequest):
    """The shift lead refuses the resumption: the case stays parked; `reason` says why."""

    ce_type: ClassVar[str] = "gridloop.case.resume_denied"


class VoidRequest(CaseAnnotation):
    """An intake operator's void request (作废申请) or the shift lead's refusal of it;
    `request_id` names the request, so a second request after a denial is a new fact."""

    request_id: RequestId
    reason: Annotated[str, Field(min_length=1, max_length=2000)]

    def identity(self) -> str:
        return f"{self.case_id}/{self.ce_type}/{self.request_id}"


class VoidRequested(VoidRequest):
    """The operator asks to void the report where the city pack makes a void wait for the
    shift lead (值班长); approval is `case.voided`."""

    ce_type: ClassVar[str] = "gridloop.case.void_requested"


class VoidDenied(VoidRequest):
    """The shift lead refuses the void: the report stays to be filed; `reason` says why."""

    ce_type: ClassVar[str] = "gridloop.case.void_denied"


UrgeId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]


class CaseUrged(CaseAnnotation):
    """督办: the shift lead urges `department` on the case, which owes a reply by
    `reply_by` (the pack's reply limit on its calendar); `urge_id` names the urge."""

    ce_type: ClassVar[str] = "gridloop.case.urged"
    department: DepartmentCode
    urge_id: UrgeId
    message: Annotated[str, Field(min_length=1, max_length=2000)]
    reply_by: datetime
    assumed_years: AssumedYears = []

    def identity(self) -> str:
        return f"{self.case_id}/{self.ce_type}/{self.urge_id}"


class UrgeReplied(CaseAnnotation):
    """The urged department's reply to a 督办 (`urge_id`)."""

    ce_type: ClassVar[str] = "gridloop.case.urge_replied"
    department: DepartmentCode
    urge_id: UrgeId
    reply: Annotated[str, Field(min_length=1, max_length=2000)]

    def identity(self) -> str:
        return f"{self.case_id}/{self.ce_type}/{self.urge_id}"


# 回访: how the resident judged the closure on the hotline's callback (满意 / 基本满意 / 不满意).
Satisfaction = Literal["satisfied", "basically_satisfied", "dissatisfied"]


class CallbackUnreached(CaseAnnotation):
    """回访: the hotline tried to call the resident back about the closure at `case_version`
    and could not reach them (`attempt`, from 1). At the city's last try (`invalid`) the
    callback is invalid: not counted by the three hotline rates."""

    ce_type: ClassVar[str] = "gridloop.case.callback_unreached"
    attempt: Annotated[int, Field(ge=1, le=100)]
    invalid: bool = False

    def identity(self) -> str:
        return f"{super().identity()}/{self.attempt}"


class CallbackAnswered(CaseAnnotation):
    """回访: the resident answered the hotline's callback about the closure at
    `case_version`: did the unit contact them (响应), is the problem solved (解决), and are
    they satisfied (满意). Its rating goes on the same path as a resident's own
    (`case.feedback`, and `case.rework` when it reopens the case)."""

    ce_type: ClassVar[str] = "gridloop.case.callback_answered"
    contacted: bool
    solved: bool
    satisfaction: Satisfaction
    comment: Text | None = None


# --- disputes (矛盾纠纷): owned by tier offices, escalated tier by tier (docs/disputes.md) ---

# The tiers that mediate a dispute, bottom up: the grid first, the city only where the pack's
# ladder reaches it (Zhoushan).
DisputeTier = Literal["grid", "community", "street", "district", "city"]
# The tier's code: the grid code, the community code (street + community, 6 digits), the
# street code (3 digits), the district code, or `city`.
TierCode = Annotated[str, Field(pattern=r"^(\d{3}|\d{6}|\d{14,15}|city)$")]
# Why a dispute went up: the tier's limit passed (its breach), or the tier says it is beyond
# its authority (an explicit escalation with a reason).
EscalationCause = Literal["breach", "beyond_authority"]


class Party(BaseModel):
    """A party to a dispute who confirmed its resolution (验收): their side, and where they
    left one, a reference to their contact (never a name or a phone)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    side: Literal["applicant", "respondent", "third_party"]
    contact: Annotated[str | None, Field(pattern=r"^ct_[0-9a-f]{32}$")] = None


class DisputeEscalated(CaseEvent):
    """The dispute goes up one tier (逐级上报): `tier` (its office `office`) holds it now,
    due by `deadline` (the pack's limit for the tier, on its clock)."""

    ce_type: ClassVar[str] = "gridloop.case.dispute_escalated"
    from_tier: DisputeTier
    from_office: TierCode
    tier: DisputeTier
    office: TierCode
    cause: EscalationCause
    deadline: datetime
    assumed_years: AssumedYears = []


class DisputeExplained(CaseAnnotation):
    """An overdue tier explains why it did not resolve the dispute in its limit (Zhoushan's
    rule); `case_version` is the version that put the dispute at that tier."""

    ce_type: ClassVar[str] = "gridloop.case.dispute_explained"
    tier: DisputeTier
    office: TierCode
    explanation: Annotated[str, Field(min_length=1, max_length=2000)]


class DisputeConfirmed(CaseAnnotation):
    """验收: the parties confirmed the tier's resolution of the dispute, as of
    `case_version`; `parties` says who."""

    ce_type: ClassVar[str] = "gridloop.case.dispute_confirmed"
    tier: DisputeTier
    office: TierCode
    parties: Annotated[list[Party], Field(min_length=1, max_length=10)]

    def identity(self) -> str:
        # Another set of parties confirming at the same version is another fact.
        sides = ",".join(sorted(f"{p.side}:{p.contact or ''}" for p in self.parties))
        return f"{super().identity()}/{sides}"


class DisputeClosed(CaseEvent):
    """The tier holding the dispute closes it as resolved: confirmed by the parties
    (`confirmed`, who in `parties`), or not, and then `reason` records why not."""

    ce_type: ClassVar[str] = "gridloop.case.dispute_closed"
    tier: DisputeTier
    office: TierCode
    confirmed: bool
    parties: Annotated[list[Party], Field(max_length=10)] = []


class Stage(StrEnum):
    verify = "verify"
    file = "file"
    dispatch = "dispatch"
    handle = "handle"
    check = "check"
    explain = "explain"  # the department's explanation of an overdue case (Zhoushan)
    mediate = "mediate"  # 调解: the tier office holding a dispute mediates it, on its limit


class SlaEvent(EventData):
    """A deadline fact about one stage of a case, computed from `case_version`."""

    case_version: Version
    stage: Stage
    department: DepartmentCode
    deadline: datetime
    assumed_years: AssumedYears = []

    def identity(self) -> str:
        return f"{self.case_id}/{self.ce_type}/{self.stage}/{self.case_version}"


class SlaWarning(SlaEvent):
    """80 % of the limit is used: the light turns yellow."""

    ce_type: ClassVar[str] = "gridloop.sla.warning"


class SlaBreach(SlaEvent):
    """The deadline passed unmet: the light turns red."""

    ce_type: ClassVar[str] = "gridloop.sla.breach"


class SlaEscalation(SlaEvent):
    """The case goes up the ladder grid → community → street → district → city."""

    ce_type: ClassVar[str] = "gridloop.sla.escalation"
    tier: Literal["community", "street", "district", "city"]
    # The tier's office (city pack `sla.yaml` offices): notify delivers the escalation there.
    notify_department: DepartmentCode | None = None

    def identity(self) -> str:
        return f"{super().identity()}/{self.tier}"


# --- The grid's people (services/grid, 网格): staff spells and patrols -----------------------

StaffId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
StaffRoleName = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z_]*$")]


class GridActor(BaseModel):
    """Who changed a grid's register or patrolled: a credential's role (gridloop.access: an
    admin, the shift lead, a grid's staff) and subject. Never a name or a phone."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    role: Annotated[str, Field(min_length=1, max_length=32)]
    id: Annotated[str, Field(min_length=1, max_length=64)]


class GridEvent(EventData):
    """A fact of one grid's people. `case_id` carries the grid's code: a grid's facts are
    keyed (so ordered) and identified by their grid as a case's are by the case."""

    actor: GridActor
    staff: StaffId


class StaffAssigned(GridEvent):
    """A person starts working the grid in a role (a spell of the register begins)."""

    ce_type: ClassVar[str] = "gridloop.grid.staff_assigned"
    role: StaffRoleName
    spell: RequestId

    def identity(self) -> str:
        return f"{self.case_id}/{self.ce_type}/{self.spell}"


class StaffReleased(GridEvent):
    """A person stops working the grid in a role (the spell ends)."""

    ce_type: ClassVar[str] = "gridloop.grid.staff_released"
    role: StaffRoleName
    spell: RequestId
    reason: Text | None = None

    def identity(self) -> str:
        return f"{self.case_id}/{self.ce_type}/{self.spell}"


class PatrolStarted(GridEvent):
    """A clock-in (巡查签到) at `point`; `outside` when the pack flags, not refuses, it."""

    ce_type: ClassVar[str] = "gridloop.grid.patrol_started"
    patrol: RequestId
    point: Point
    outside: bool = False

    def identity(self) -> str:
        return f"{self.case_id}/{self.ce_type}/{self.patrol}"


class PatrolEnded(GridEvent):
    """A clock-out: the patrol's track is `points` long, `outside` of them out of the grid."""

    ce_type: ClassVar[str] = "gridloop.grid.patrol_ended"
    patrol: RequestId
    point: Point
    points: Annotated[int, Field(ge=0)]
    outside: Annotated[int, Field(ge=0)]

    def identity(self) -> str:
        return f"{self.case_id}/{self.ce_type}/{self.patrol}"


# --- Households and visits (services/grid, 走访): the register's doors, a grid person's visits,
# and the cases their findings became. Keyed by grid code like the grid's other facts; never
# a resident's name (the register keeps one only where the pack says, and not in the log).

HouseholdId = Annotated[str, Field(pattern=r"^hh_[0-9a-f]{16}$")]
Occupancy = Literal["owner_occupied", "rented", "office", "vacant"]  # Yichang's colour classes
FindingType = Literal["dispute", "need", "suggestion", "safety_hazard", "fire_hazard", "sanitation"]


class VisitFinding(BaseModel):
    """What a resident raised on a visit (民情): its type, a short text, and the household
    it concerns (if one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: FindingType
    text: Annotated[str, Field(min_length=1, max_length=500)]
    household: HouseholdId | None = None


class VisitLogged(GridEvent):
    """A grid person (`staff`) visited `households` of the grid at `at` (走访), and what
    residents raised there (`findings`)."""

    ce_type: ClassVar[str] = "gridloop.grid.visit_logged"
    visit: RequestId
    at: datetime
    households: Annotated[list[HouseholdId], Field(min_length=1, max_length=200)]
    findings: Annotated[list[VisitFinding], Field(max_length=20)] = []

    def identity(self) -> str:
        return f"{self.case_id}/{self.ce_type}/{self.visit}"


class FindingReported(GridEvent):
    """A visit's finding (`finding`, its index) became case `reported_case` in intake, of
    `kind` (`dispute` for a dispute); `staff` is who reported it."""

    ce_type: ClassVar[str] = "gridloop.grid.finding_reported"
    visit: RequestId
    finding: Annotated[int, Field(ge=0, le=19)]
    finding_type: FindingType
    reported_case: CaseId
    kind: Annotated[str, Field(pattern=r"^[a-z_]{1,20}$")]

    def identity(self) -> str:
        return f"{self.case_id}/{self.ce_type}/{self.visit}/{self.finding}"


class HouseholdChanged(EventData):
    """A door of the grid's household register added through the API (`change` 1; the
    pack's doors are revision 1 without an event), its occupancy changed, or removed
    (`removed`): where it is and how it is used, never who lives there."""

    ce_type: ClassVar[str] = "gridloop.grid.household_changed"
    actor: GridActor
    household: HouseholdId
    building: Annotated[str, Field(min_length=1, max_length=60)]
    door: Annotated[str, Field(min_length=1, max_length=20)]
    occupancy: Occupancy
    removed: bool = False
    change: Annotated[int, Field(ge=1)]  # the door's revision after it

    def identity(self) -> str:
        return f"{self.case_id}/{self.ce_type}/{self.household}/{self.change}"


EVENT_TYPES: dict[str, type[EventData]] = {
    model.ce_type: model
    for model in (
        CaseReported,
        CaseVerified,
        CaseFiled,
        CaseVoided,
        CaseMerged,
        CaseSplit,
        CaseDispatched,
        CaseReturned,
        CaseExtended,
        CaseParked,
        CaseResumed,
        CaseHandled,
        CaseChecked,
        CaseClosed,
        CaseReworked,
        FeedbackGiven,
        CaseExplained,
        CaseAcknowledged,
        ExtensionRequested,
        ExtensionDenied,
        ParkingRequested,
        ParkingDenied,
        ReturnRequested,
        ReturnDenied,
        ResumeRequested,
        ResumeDenied,
        VoidRequested,
        VoidDenied,
        CaseUrged,
        UrgeReplied,
        CallbackUnreached,
        CallbackAnswered,
        CaseAnswered,
        DisputeEscalated,
        DisputeExplained,
        DisputeConfirmed,
        DisputeClosed,
        CaseSelfHandled,
        SlaWarning,
        SlaBreach,
        SlaEscalation,
        # The grid's people (services/grid).
        StaffAssigned,
        StaffReleased,
        PatrolStarted,
        PatrolEnded,
        # Households and visits (services/grid, 走访).
        VisitLogged,
        FindingReported,
        HouseholdChanged,
    )
}
