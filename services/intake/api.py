"""Intake's HTTP API (FastAPI). Answers 202 only once Kafka acknowledged the events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from gridloop.citypack import CityPack
from gridloop.errors import Rejected, install_error_handlers, publish_or_refuse
from gridloop.idempotency import Answer, IdempotencyStore
from gridloop.kafka import EventProducer
from gridloop.runtime import add_ops_routes
from schemas.envelope import Envelope
from schemas.events import CaseEvent
from services.intake.core import (
    CheckIn,
    ReportIn,
    VerificationIn,
    decide_check,
    decide_report,
    decide_verification,
)
from services.projections.core import CaseView
from services.projections.store import CaseStore

SOURCE = "/gridloop/intake"
_CASE_NAMESPACE = uuid.UUID("0d7b3a4e-2f7e-4bd4-8f53-9d61d1f0c3a1")


class Intake:
    """What the routes need; built once by the service's bootstrap."""

    def __init__(
        self,
        pack: CityPack,
        producer: EventProducer,
        cases: CaseStore,
        idempotency: IdempotencyStore,
    ) -> None:
        self.pack, self.producer, self.cases, self.idempotency = pack, producer, cases, idempotency

    async def publish(self, events: Sequence[CaseEvent]) -> None:
        await publish_or_refuse(self.producer, [Envelope(e, SOURCE) for e in events])

    async def case(self, case_id: str) -> CaseView:
        doc = await self.cases.get(case_id)
        if doc is None:
            raise Rejected(404, ("path", "case_id"), f"no case {case_id}", "not_found")
        return CaseView.from_doc(doc)


def _intake(request: Request) -> Intake:
    intake: Intake = request.app.state.intake
    return intake


Deps = Annotated[Intake, Depends(_intake)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
router = APIRouter()


def _accepted(events: Sequence[CaseEvent]) -> Answer:
    last = events[-1]
    return 202, {
        "case_id": last.case_id,
        "state": last.ce_type.rsplit(".", 1)[-1],
        "version": last.version,
        "events": [Envelope(e, SOURCE).id for e in events],
    }


@router.post("/reports", status_code=202)
async def submit_report(report: ReportIn, intake: Deps, key: IdempotencyKey = None) -> JSONResponse:
    """Submit a report (信息收集). Supervisors' reports are filed at once."""
    # With a key, the case id is derived from it: a retry yields the very same events.
    case_id = str(uuid.uuid5(_CASE_NAMESPACE, key) if key else uuid.uuid4())

    async def work() -> Answer:
        events = decide_report(report, intake.pack, case_id)
        await intake.publish(events)
        return _accepted(events)

    return await intake.idempotency.once("report", key, report.model_dump_json().encode(), work)


@router.post("/cases/{case_id}/verification", status_code=202)
async def verify(
    case_id: str, answer: VerificationIn, intake: Deps, key: IdempotencyKey = None
) -> JSONResponse:
    """A supervisor's verification (核实) of a citizen report: confirmed or refuted."""

    async def work() -> Answer:
        events = decide_verification(await intake.case(case_id), answer)
        await intake.publish(events)
        return _accepted(events)

    body = f"{case_id}:{answer.model_dump_json()}".encode()
    return await intake.idempotency.once("verification", key, body, work)


@router.post("/cases/{case_id}/check", status_code=202)
async def check(
    case_id: str, answer: CheckIn, intake: Deps, key: IdempotencyKey = None
) -> JSONResponse:
    """A supervisor's on-site check (核查) of a handled case: closed, or back to rework."""

    async def work() -> Answer:
        events = decide_check(await intake.case(case_id), answer)
        await intake.publish(events)
        return _accepted(events)

    body = f"{case_id}:{answer.model_dump_json()}".encode()
    return await intake.idempotency.once("check", key, body, work)


@router.get("/cases/{case_id}")
async def read_case(case_id: str, intake: Deps) -> dict[str, Any]:
    """The case as projected from the event log: state and the whole timeline."""
    doc = await intake.cases.get(case_id)
    if doc is None:
        raise Rejected(404, ("path", "case_id"), f"no case {case_id}", "not_found")
    doc["case_id"] = doc.pop("_id")
    encoded: dict[str, Any] = jsonable_encoder(doc)
    return encoded


def create_app(intake: Intake) -> FastAPI:
    app = FastAPI(title="gridloop intake", version="0.1.0")
    app.state.intake = intake
    app.include_router(router)
    install_error_handlers(app)
    add_ops_routes(app)
    return app
