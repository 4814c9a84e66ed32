"""Hand-built event sequences of one case for the evaluation tests: each step is the next
case version, an hour after the previous one unless told when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.envelope import Envelope
from schemas.events import (
    CaseAcknowledged,
    CaseAnswered,
    CaseChecked,
    CaseClosed,
    CaseDispatched,
    CaseEvent,
    CaseExtended,
    CaseFiled,
    CaseHandled,
    CaseMerged,
    CaseParked,
    CaseReported,
    CaseResumed,
    CaseReturned,
    CaseReworked,
    CaseSelfHandled,
    CaseVerified,
    CaseVoided,
    ExtensionDenied,
    ExtensionRequested,
    FeedbackGiven,
    SlaBreach,
    Stage,
)

GRID = "110101001002001"  # street 001, community 001002
OTHER_GRID = "110101002001001"  # street 002, community 002001
START = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # Monday 2 November 2026, 09:00 in Shanghai
HOUR = timedelta(hours=1)
SUPERVISOR = {"role": "supervisor", "id": "sup-7"}
SYSTEM = {"role": "system", "id": "dispatch"}


def _centre(person: str) -> dict[str, str]:
    """A supervision-centre operator signed in on the centre's shared credential."""
    return {"role": "supervision_centre", "id": "centre-demo", "person": person}


class Story:
    """The events of one case, told in order."""

    def __init__(self, case_id: str, at: datetime = START) -> None:
        self.case_id = case_id
        self.version = 0
        self.at = at
        self.events: list[Envelope] = []

    def _step(self, model: type[CaseEvent], at: datetime | None, **fields: Any) -> Story:
        self.version += 1
        self.at = at or (self.at + HOUR if self.version > 1 else self.at)
        actor = fields.pop("actor", SYSTEM)
        data = model.model_validate(
            {"case_id": self.case_id, "version": self.version, "actor": actor, **fields}
        )
        self.events.append(Envelope(data, "/tests", self.at))
        return self

    def reported(
        self,
        channel: str = "supervisor",
        grid: str = GRID,
        at: datetime | None = None,
        actor: dict[str, str] | None = None,
        reporter_id: str | None = None,
        verifier: str | None = None,
        verify_in: timedelta | None = None,
        contact: str | None = None,
    ) -> Story:
        """A report; a citizen's is a verification task for `verifier`, due `verify_in`
        after it (as intake says)."""
        if actor is None:
            actor = SUPERVISOR if channel == "supervisor" else {"role": "citizen", "id": "web"}
        at = at or (self.at + HOUR if self.version else self.at)
        return self._step(
            CaseReported,
            at,
            actor=actor,
            channel=channel,
            class_code="0102",
            kind="event",
            point={"lon": 116.4, "lat": 39.9},
            grid_code=grid,
            description="rubbish",
            reporter={
                "id": reporter_id,
                "name": "张伟",
                "phone": "13800000000",
                **({"contact": contact} if contact else {}),
            },
            verifier=verifier,
            verification_due=at + verify_in if verify_in is not None else None,
        )

    def verified(self, by: str = "sup-7", at: datetime | None = None) -> Story:
        """A supervisor confirmed the report on site (核实)."""
        return self._step(CaseVerified, at, actor={"role": "supervisor", "id": by})

    def filed(
        self, grid: str = GRID, at: datetime | None = None, operator: str | None = None
    ) -> Story:
        """Filed: by the system's rule, or by supervision-centre `operator` (a person
        signed in on the centre's shared credential)."""
        actor = _centre(operator) if operator else SYSTEM
        fields = {"kind": "event", "class_code": "0102", "grid_code": grid}
        return self._step(CaseFiled, at, actor=actor, **fields)

    def voided(
        self, by: str | None = None, at: datetime | None = None, operator: str | None = None
    ) -> Story:
        """Voided: by the supervision centre (`operator`, a person), or refuted on site by
        supervisor `by`."""
        actor = {"role": "supervisor", "id": by} if by else SYSTEM
        actor = _centre(operator) if operator else actor
        return self._step(CaseVoided, at, actor=actor, reason="not a city problem")

    def answered(self, knowledge_id: str = "heating-2026", operator: str = "op-1") -> Story:
        """Answered directly from the knowledge base (直接答复) by a hotline operator."""
        actor = {"role": "hotline", "id": operator}
        return self._step(CaseAnswered, None, actor=actor, knowledge_id=knowledge_id, answer="…")

    def self_handled(self, actor: dict[str, str] | None = None) -> Story:
        """Fixed on the spot (自处置) by who reported it (by default the supervisor)."""
        fields = {"media": ["b" * 24], "note": "picked it up"}
        return self._step(CaseSelfHandled, None, actor=actor or SUPERVISOR, **fields)

    def requested(self, request_id: str, at: datetime | None = None) -> Story:
        """The department asks to extend the deadline (an annotation of this version)."""
        data = ExtensionRequested(
            case_id=self.case_id,
            case_version=self.version,
            actor={"role": "department", "id": "SANITATION"},
            department="SANITATION",
            request_id=request_id,
            reason="needs two days",
            deadline=self.at + 48 * HOUR,
        )
        self.events.append(Envelope(data, "/tests", at or self.at + timedelta(minutes=1)))
        return self

    def denied(self, request_id: str, lead: str, at: datetime | None = None) -> Story:
        """The shift lead `lead` refuses the request (by default 10 minutes on)."""
        data = ExtensionDenied(
            case_id=self.case_id,
            case_version=self.version,
            actor={"role": "shift_lead", "id": lead},
            department="SANITATION",
            request_id=request_id,
            reason="no",
        )
        self.events.append(Envelope(data, "/tests", at or self.at + timedelta(minutes=10)))
        return self

    def merged(self) -> Story:
        return self._step(CaseMerged, None, into_case_id="C-OTHER")

    def dispatched(
        self,
        department: str = "SANITATION",
        due_in: timedelta = 4 * HOUR,
        at: datetime | None = None,
        dispatcher: str | None = None,
    ) -> Story:
        """Dispatched: by the system's routing, or by hand by `dispatcher`."""
        at = at or self.at + HOUR
        actor = {"role": "command_centre", "id": dispatcher} if dispatcher else SYSTEM
        fields = {"department": department, "deadline": at + due_in, "rule": "test"}
        fields |= {"basis": "manual"} if dispatcher else {}
        return self._step(CaseDispatched, at, actor=actor, **fields)

    def returned(self, department: str = "SANITATION") -> Story:
        return self._step(CaseReturned, None, department=department, reason="not ours")

    def extended(
        self,
        deadline: datetime,
        request_id: str | None = None,
        lead: str | None = None,
        at: datetime | None = None,
    ) -> Story:
        """The deadline moved: by the shift lead `lead` approving `request_id`, or not."""
        actor = {"role": "shift_lead", "id": lead} if lead else SYSTEM
        return self._step(CaseExtended, at, actor=actor, deadline=deadline, request_id=request_id)

    def parked(self) -> Story:
        return self._step(CaseParked, None)

    def resumed(self, at: datetime | None = None, deadline: datetime | None = None) -> Story:
        """Resumed after parking, carrying its moved `deadline` (none: as before issue 19)."""
        return self._step(CaseResumed, at, deadline=deadline)

    def handled(self, department: str = "SANITATION", at: datetime | None = None) -> Story:
        return self._step(CaseHandled, at, department=department)

    def checked(
        self, passed: bool = True, by: str | None = None, at: datetime | None = None
    ) -> Story:
        """Checked on site (核查), by supervisor `by` (none: entered by the system)."""
        actor = {"role": "supervisor", "id": by} if by else SYSTEM
        return self._step(CaseChecked, at, actor=actor, passed=passed)

    def closed(self) -> Story:
        return self._step(CaseClosed, None)

    def rework(self) -> Story:
        return self._step(CaseReworked, None)

    def feedback(self, rating: int) -> Story:
        return self._step(FeedbackGiven, None, rating=rating)

    def breach(
        self,
        stage: Stage = Stage.handle,
        department: str = "SANITATION",
        deadline: datetime | None = None,
    ) -> Story:
        """The SLA engine's breach of the clock of `stage` the newest event that opens one
        opened (handle: a dispatch; check: a handling; verify: the report; dispatch: a
        filing, return or rework), due at `deadline` (default: now, the last event's time)."""
        openers = {
            Stage.handle: (".dispatched",),
            Stage.check: (".handled",),
            Stage.verify: (".reported",),
            Stage.dispatch: (".filed", ".returned", ".rework"),
            Stage.file: (".reported", ".verified"),
        }[stage]
        opened = max(
            e.data.version
            for e in self.events
            if isinstance(e.data, CaseEvent) and e.type.endswith(openers)
        )
        data = SlaBreach(
            case_id=self.case_id,
            case_version=opened,
            stage=stage,
            department=department,
            deadline=deadline or self.at,
        )
        self.events.append(Envelope(data, "/tests", self.at + timedelta(seconds=1)))
        return self

    def acknowledged(self, department: str = "SANITATION") -> Story:
        data = CaseAcknowledged(
            case_id=self.case_id, case_version=self.version, actor=SYSTEM, department=department
        )
        self.events.append(Envelope(data, "/tests", self.at + timedelta(minutes=5)))
        return self

    def done(self, rating: int | None = None) -> Story:
        """Handled in time, checked, closed (and rated)."""
        self.handled().checked().closed()
        return self.feedback(rating) if rating is not None else self
