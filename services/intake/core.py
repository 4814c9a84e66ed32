"""Intake decisions. Pure: the city pack and a case view in, events out."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from gridloop.citypack import CityPack
from gridloop.errors import Rejected
from gridloop.lifecycle import next_state
from schemas.events import (
    Actor,
    CaseChecked,
    CaseClosed,
    CaseEvent,
    CaseFiled,
    CaseReported,
    CaseReworked,
    CaseVerified,
    CaseVoided,
    Channel,
    Kind,
    Point,
    Reporter,
    Role,
)
from services.projections.core import CaseView

Note = Annotated[str | None, Field(max_length=2000)]
PersonId = Annotated[str, Field(min_length=1, max_length=64)]


class ReportIn(BaseModel):
    """A report as a client submits it."""

    model_config = ConfigDict(extra="forbid")
    channel: Channel
    kind: Kind
    class_code: Annotated[str, Field(pattern=r"^\d{4,5}$")]
    point: Point
    description: Annotated[str, Field(min_length=1, max_length=2000)]
    reporter: Reporter = Field(default_factory=Reporter)


class VerificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    supervisor_id: PersonId
    confirmed: bool
    note: Note = None


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    supervisor_id: PersonId
    passed: bool
    note: Note = None


def _reporting_actor(report: ReportIn) -> Actor:
    if report.channel is Channel.supervisor:
        if not report.reporter.id:
            raise Rejected(
                422,
                ("body", "reporter", "id"),
                "a supervisor report must name its supervisor",
                "missing",
            )
        return Actor(role=Role.supervisor, id=report.reporter.id)
    role = Role.hotline if report.channel is Channel.hotline else Role.citizen
    return Actor(role=role, id=report.reporter.id or report.channel.value)


def decide_report(report: ReportIn, pack: CityPack, case_id: str) -> list[CaseEvent]:
    """A report becomes a case. Supervisors' reports are filed at once (立案); citizens'
    wait for a supervisor to verify them."""
    if (report.kind, report.class_code) not in pack.classes:
        raise Rejected(
            422,
            ("body", "class_code"),
            f"no {report.kind} class {report.class_code} in this city's catalogue",
            "unknown_class",
        )
    grid = pack.locate(report.point.lon, report.point.lat)
    if grid is None:
        raise Rejected(
            422,
            ("body", "point"),
            f"({report.point.lon}, {report.point.lat}) lies outside every grid of {pack.city.name}",
            "outside_grids",
        )
    actor = _reporting_actor(report)
    reported = CaseReported(
        case_id=case_id,
        version=1,
        actor=actor,
        channel=report.channel,
        kind=report.kind,
        class_code=report.class_code,
        point=report.point,
        grid_code=grid.code,
        description=report.description,
        reporter=report.reporter,
    )
    if report.channel is not Channel.supervisor:
        return [reported]
    filed = CaseFiled(
        case_id=case_id,
        version=2,
        actor=actor,
        kind=report.kind,
        class_code=report.class_code,
        grid_code=grid.code,
        reason="reported by a supervisor",
    )
    return [reported, filed]


def decide_verification(case: CaseView, answer: VerificationIn) -> list[CaseEvent]:
    """Confirmed: verified and filed. Refuted: voided (作废)."""
    actor = Actor(role=Role.supervisor, id=answer.supervisor_id)
    v = case.version
    if not answer.confirmed:
        next_state(case.state, "voided")
        reason = answer.note or "refuted by the supervisor on site"
        return [CaseVoided(case_id=case.case_id, version=v + 1, actor=actor, reason=reason)]
    next_state(case.state, "verified")
    assert case.kind in ("component", "event") and case.class_code and case.grid_code
    return [
        CaseVerified(case_id=case.case_id, version=v + 1, actor=actor, note=answer.note),
        CaseFiled(
            case_id=case.case_id,
            version=v + 2,
            actor=actor,
            kind=case.kind,
            class_code=case.class_code,
            grid_code=case.grid_code,
            reason="verified by a supervisor",
        ),
    ]


def decide_check(case: CaseView, answer: CheckIn) -> list[CaseEvent]:
    """Passed: closed (结案). Failed: rework (返工), which the command centre dispatches."""
    actor = Actor(role=Role.supervisor, id=answer.supervisor_id)
    v = case.version
    next_state(case.state, "checked")
    checked = CaseChecked(
        case_id=case.case_id, version=v + 1, actor=actor, passed=answer.passed, note=answer.note
    )
    if answer.passed:
        return [checked, CaseClosed(case_id=case.case_id, version=v + 2, actor=actor)]
    reason = answer.note or "the on-site check failed"
    return [checked, CaseReworked(case_id=case.case_id, version=v + 2, actor=actor, reason=reason)]
