"""Dispatch's adapters: the Kafka handler for filed and reworked cases, and the
departments' callback API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from gridloop.citypack import CityPack
from gridloop.errors import Rejected, install_error_handlers, publish_or_refuse
from gridloop.kafka import EventProducer, Retry
from gridloop.runtime import add_ops_routes
from schemas.envelope import Envelope
from schemas.events import CaseFiled, CaseReworked
from services.dispatch.core import HandledIn, decide_dispatch, decide_handled
from services.projections.core import CaseView
from services.projections.store import CaseStore

SOURCE = "/gridloop/dispatch"


class CaseNotYetProjected(Retry):
    """The projection lags behind the event: retried, as a transient failure."""


class Dispatch:
    def __init__(self, pack: CityPack, producer: EventProducer, cases: CaseStore) -> None:
        self.pack, self.producer, self.cases = pack, producer, cases

    async def on_event(self, env: Envelope) -> Sequence[Envelope]:
        data = env.data
        if isinstance(data, CaseFiled):
            event = decide_dispatch(
                self.pack,
                data.case_id,
                data.version,
                data.kind,
                data.class_code,
                data.grid_code,
                env.time,
            )
            return [Envelope(event, SOURCE)]
        if isinstance(data, CaseReworked):
            doc = await self.cases.get(data.case_id)
            if doc is None or not doc.get("class_code"):
                raise CaseNotYetProjected(data.case_id)
            case = CaseView.from_doc(doc)
            assert case.kind is not None and case.class_code and case.grid_code
            event = decide_dispatch(
                self.pack,
                case.case_id,
                data.version,
                case.kind,
                case.class_code,
                case.grid_code,
                env.time,
            )
            return [Envelope(event, SOURCE)]
        return []


def _dispatch(request: Request) -> Dispatch:
    dispatch: Dispatch = request.app.state.dispatch
    return dispatch


router = APIRouter()


@router.post("/departments/{department}/cases/{case_id}/handled", status_code=202)
async def report_handled(
    department: str,
    case_id: str,
    answer: HandledIn,
    dispatch: Annotated[Dispatch, Depends(_dispatch)],
) -> JSONResponse:
    """A department's callback: the case is handled."""
    doc = await dispatch.cases.get(case_id)
    if doc is None:
        raise Rejected(404, ("path", "case_id"), f"no case {case_id}", "not_found")
    event = Envelope(decide_handled(CaseView.from_doc(doc), department, answer), SOURCE)
    await publish_or_refuse(dispatch.producer, [event])
    return JSONResponse({"case_id": case_id, "state": "handled", "events": [event.id]}, 202)


def create_app(dispatch: Dispatch) -> FastAPI:
    app = FastAPI(title="gridloop dispatch: department callbacks", version="0.1.0")
    app.state.dispatch = dispatch
    app.include_router(router)
    install_error_handlers(app)
    add_ops_routes(app)
    return app
