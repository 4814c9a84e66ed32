"""Intake's HTTP API (FastAPI). Answers 202 only once Kafka acknowledged the events.

Who may call what (bearer credentials, `gridloop.auth`):

- `POST /reports`: website: anyone; hotline: hotline operators; supervisor: supervisors
- `POST /reports/batch` (`bulk.py`): up to 500 reports, all or none, each as `POST /reports`
- `POST /media`: anyone who may report (photos, voice notes)
- `GET /media/{id}`, `GET /cases/{id}`: staff (`STAFF`); reporters' names and phones only to
  hotline, supervision centre and admin; a department only its own cases and their media
  (and its own uploads); every media read audited
- `GET /cases/{id}/public`: the reporter, by follow token or their own citizen credential
- `POST /cases/{id}/verification`, `/check`: supervisors; `GET /tasks/verification` and
  `GET /tasks/check` (`checks.py`): also the supervision centre
- `POST /cases/{id}/file`, `/void`, `/merge`, `/split`, `GET /tasks/filing`: supervision centre
- `POST /cases/{id}/feedback` (`feedback.py`): the reporter, as for `/public`; hotline
- `GET /callbacks`, `POST /cases/{id}/callback[/unreached]` (`callbacks.py`): hotline
- `POST /cases/{id}/contact/erasure` (`erasure.py`): hotline, supervision centre, admin
- `GET /knowledge`, `POST /cases/{id}/answer` (`knowledge.py`): the knowledge base and
  answering a consultation from it (直接答复): hotline, supervision centre
- `POST /cases/{id}/contact/opt-out` (`optout.py`): the reporter, as for `/public`; hotline
- `POST /self-handling` (`selfhandling_api.py`): 自处置, supervisors and grid staff
- `/open311/v2/…` (GeoReport v2, `open311_api.py`): anyone reads; posting needs an `api_key`
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from gridloop import medialinks
from gridloop.audit import media_read, personal_read, refusal
from gridloop.audit import router as audit_router
from gridloop.auth import Principal, Role
from gridloop.cases.record import CaseRecord
from gridloop.errors import install_error_handlers, refusals
from gridloop.follow import follow_key
from gridloop.http import HttpLimits, harden
from gridloop.refusal import Refused, Why, not_found
from gridloop.runtime import add_ops_routes
from schemas.clock import now
from services.intake import commands as do
from services.intake.bulk import router as bulk
from services.intake.callbacks import router as callbacks
from services.intake.checks import router as checks
from services.intake.edge import (
    ACCEPTED,
    ACT,
    FOLLOW_TOKEN,
    READ,
    Anyone,
    Centre,
    Deps,
    IdempotencyKey,
    ShiftLead,
    Staff,
    Supervisor,
    TaskReader,
    asked,
    new_case_id,
    respond,
)
from services.intake.erasure import router as erasure
from services.intake.feedback import router as feedback
from services.intake.handlers import Intake
from services.intake.knowledge import router as knowledge
from services.intake.media import MAX_UPLOAD, MEDIA_CONTENT_TYPES
from services.intake.open311_api import router as open311
from services.intake.optout import router as opt_out
from services.intake.reporting import PERSONAL_DATA_ROLES
from services.intake.requests import (
    CheckIn,
    FileIn,
    MergeIn,
    ReportIn,
    SplitIn,
    VerificationIn,
    VoidDecisionIn,
    VoidIn,
    report_of,
)
from services.intake.selfhandling_api import router as self_handling
from services.intake.views import (
    department_may_read,
    may_follow,
    media_case,
    personal_fields,
    public_view,
    staff_view,
)

__all__ = ["Intake", "create_app", "follow_key"]
router = APIRouter()
_REQUESTS = uuid.UUID("6f1c1a52-6a0e-4d0b-9a55-2f4e3c1b7d10")  # void request ids


class Stored(BaseModel):
    """An upload, as kept: name its `media_id` in a report or verification."""

    media_id: str
    content_type: str
    kind: str
    size: int
    sha256: str


MEDIA_READ: dict[int | str, dict[str, Any]] = {
    200: {"description": "The file", "content": {t: {} for t in MEDIA_CONTENT_TYPES}},
    **READ,
}


@router.post("/reports", status_code=202, responses=ACCEPTED | refusals(400, 401, 403, 503))
async def submit_report(
    report: ReportIn, intake: Deps, who: Anyone, key: IdempotencyKey = None
) -> JSONResponse:
    """Submit a report (信息收集). Website reports answer with a `follow_token`."""
    # The fingerprint matters only under a key (≈ 8 µs a report without one).
    content = report.model_dump_json() if key else ""
    command = report_of(report, new_case_id("report", who, key, content=content), who)
    return respond(await intake.report(command, asked("report", who, key, content)))


@router.post(
    "/media",
    status_code=201,
    responses={201: {"model": Stored, "description": "Stored"}, **refusals(400, 401, 413, 415)},
)
async def upload_media(
    intake: Deps,
    who: Anyone,
    file: Annotated[UploadFile, File(description="a photo or a voice note")],
) -> JSONResponse:
    """Upload a photo (JPEG, PNG, WebP ≤ 10 MiB) or voice note (AMR, MP3, M4A, WAV, Ogg,
    WebM ≤ 5 MiB); name its `media_id` in a report or verification."""
    data = await file.read(MAX_UPLOAD + 1)
    stored = await intake.media.put(data, file.filename or "upload", who)
    return JSONResponse(stored, status_code=201)


@router.get("/media/{media_id}", response_class=Response, responses=MEDIA_READ)
async def read_media(media_id: str, intake: Deps, who: Staff, request: Request) -> Response:
    """A photo or voice note. A department reads those of the cases it may read (as `GET
    /cases/{id}`) and its own uploads; to it, any other is as unknown (404). Every read is
    recorded in the audit trail first, and so is a department's refused one."""
    trail = request.app.state.audit
    upload = await intake.media.upload(media_id)
    if upload is None:
        raise not_found(("path", "media_id"), f"no media {media_id}")
    records: list[CaseRecord] = []
    if who.role is Role.department:
        records = [r for c in upload.cases if (r := await intake.cases.record(c)) is not None]
    granted, case_id = media_case(who, upload.uploaded_by, records, upload.cases)
    if not granted:
        why = "media of a case this department may not read"
        record = refusal("intake", "GET /media/{media_id}", None, who, 404, why)
        await trail.add(record | {"media_id": media_id})
        raise not_found(("path", "media_id"), f"no media {media_id}")
    await trail.add(media_read("intake", who, media_id, case_id))
    return Response(await intake.media.read(media_id), media_type=upload.content_type)


LINK_READ: dict[int | str, dict[str, Any]] = {
    200: MEDIA_READ[200],
    **refusals(403, 404),
}


@router.get("/media/{media_id}/signed", response_class=Response, responses=LINK_READ)
async def read_signed_media(
    media_id: str,
    intake: Deps,
    request: Request,
    department: Annotated[str, Query(max_length=32)],
    expires: Annotated[int, Query(ge=0, le=2**40)],
    signature: Annotated[str, Query(max_length=medialinks.SIGNATURE_HEX)],
) -> Response:
    """A photo or voice note by the signed link a webhook carried: no credential, the link
    is one — until it expires, and while the department it was signed for may read the
    case. Refused (403) when altered or expired; audited as that department's read."""
    key = await intake.media_key()
    verdict = medialinks.check(key, media_id, department, expires, signature, now())
    if verdict != "valid":
        said = {"tampered": "its signature does not match", "expired": "it has expired"}
        reason = f"this media link is refused: {said[verdict]}"
        field = "signature" if verdict == "tampered" else "expires"
        raise Refused(Why.forbidden, ("query", field), reason, f"link_{verdict}")
    who = Principal(Role.department, department)
    upload = await intake.media.upload(media_id)
    if upload is None:
        raise not_found(("path", "media_id"), f"no media {media_id}")
    records = [r for c in upload.cases if (r := await intake.cases.record(c)) is not None]
    granted, case_id = media_case(who, None, records, upload.cases)
    trail = request.app.state.audit
    if not granted:  # the case was sent elsewhere since: the link follows the case
        why = "a signed link to media of a case this department may not read"
        refused = refusal("intake", "GET /media/{media_id}/signed", None, who, 404, why)
        await trail.add(refused | {"media_id": media_id})
        raise not_found(("path", "media_id"), f"no media {media_id}")
    await trail.add(media_read("intake", who, media_id, case_id))
    return Response(await intake.media.read(media_id), media_type=upload.content_type)


async def _act(
    intake: Intake, command: do.CaseCommand, name: str, key: str | None, body: BaseModel
) -> JSONResponse:
    return respond(await intake.act(command, asked(name, command.who, key, body.model_dump_json())))


@router.post("/cases/{case_id}/verification", status_code=202, responses=ACT)
async def verify(
    case_id: str,
    answer: VerificationIn,
    intake: Deps,
    who: Supervisor,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """A supervisor's verification (核实) of a citizen report: confirmed or refuted."""
    media = tuple(answer.media)
    command = do.Verify(case_id, who, answer.confirmed, answer.note, media, answer.supervisor_id)
    return await _act(intake, command, "verification", key, answer)


@router.post("/cases/{case_id}/check", status_code=202, responses=ACT)
async def check(
    case_id: str, answer: CheckIn, intake: Deps, who: Supervisor, key: IdempotencyKey = None
) -> JSONResponse:
    """A supervisor's on-site check (核查) of a handled case: closed, or back to rework."""
    media = tuple(answer.media)
    command = do.Check(case_id, who, answer.passed, answer.note, answer.supervisor_id, media)
    return await _act(intake, command, "check", key, answer)


@router.post("/cases/{case_id}/file", status_code=202, responses=ACT)
async def file_case(
    case_id: str, answer: FileIn, intake: Deps, who: Centre, key: IdempotencyKey = None
) -> JSONResponse:
    """File the case (立案) with a case number: class + date + sequence. With `kind` and
    `class_code`, in that class of the catalogue instead of the report's."""
    command = do.File(case_id, who, answer.note, answer.kind, answer.class_code)
    return await _act(intake, command, "file", key, answer)


@router.post("/cases/{case_id}/void", status_code=202, responses=ACT)
async def void_case(
    case_id: str, answer: VoidIn, intake: Deps, who: Centre, key: IdempotencyKey = None
) -> JSONResponse:
    """Void the report (作废), saying why (or, where the city pack says so, ask to: a
    request the shift lead approves or denies)."""
    void = do.Void(case_id, who, answer.reason, _request_id(case_id, key))
    return await _act(intake, void, "void", key, answer)


@router.post("/cases/{case_id}/void/approve", status_code=202, responses=ACT)
async def approve_void(
    case_id: str,
    answer: VoidDecisionIn,
    intake: Deps,
    who: ShiftLead,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """The shift lead approves the case's pending void request: the report is voided."""
    command = do.AnswerVoid(case_id, who, True, answer.reason)
    return await _act(intake, command, "void-approve", key, answer)


@router.post("/cases/{case_id}/void/deny", status_code=202, responses=ACT)
async def deny_void(
    case_id: str,
    answer: VoidDecisionIn,
    intake: Deps,
    who: ShiftLead,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """The shift lead denies the case's pending void request, saying why: the report
    stays to be verified or filed."""
    command = do.AnswerVoid(case_id, who, False, answer.reason)
    return await _act(intake, command, "void-deny", key, answer)


def _request_id(case_id: str, key: str | None) -> str:
    # With an Idempotency-Key the request id is derived from it: a retry is the same fact.
    return str(uuid.uuid5(_REQUESTS, f"{case_id}:{key}") if key else uuid.uuid4())


@router.post("/cases/{case_id}/merge", status_code=202, responses=ACT)
async def merge_case(
    case_id: str, answer: MergeIn, intake: Deps, who: Centre, key: IdempotencyKey = None
) -> JSONResponse:
    """Merge a report into another open case of the same problem (its reporter is linked)."""
    command = do.Merge(case_id, who, answer.into_case_id, answer.reason)
    return await _act(intake, command, "merge", key, answer)


@router.post("/cases/{case_id}/split", status_code=202, responses=ACT)
async def split_case(
    case_id: str, answer: SplitIn, intake: Deps, who: Centre, key: IdempotencyKey = None
) -> JSONResponse:
    """Split a merged report off: a case of its own again, to verify or file."""
    return await _act(intake, do.Split(case_id, who, answer.reason), "split", key, answer)


@router.get("/cases/{case_id}", responses=READ)
async def read_case(case_id: str, intake: Deps, who: Staff, request: Request) -> dict[str, Any]:
    """The case as projected from the event log: state and the whole timeline. Showing a
    reporter's name or phone is recorded in the audit trail first."""
    record = await intake.cases.record(case_id)
    if record is None or not department_may_read(record, who):
        raise not_found(("path", "case_id"), f"no case {case_id}")
    ref = record.reporter.contact if record.reporter is not None else None
    contact = None
    if ref is not None and who.role in PERSONAL_DATA_ROLES:
        contact = await intake.contacts.get(ref)
    view = staff_view(record, who, await intake.cases.merged_into(case_id), contact)
    if shown := personal_fields(view):
        await request.app.state.audit.add(personal_read("intake", who, case_id, shown))
    encoded: dict[str, Any] = jsonable_encoder(view)
    return encoded


@router.get("/cases/{case_id}/public", responses=refusals(401, 404))
async def follow_case(
    case_id: str,
    intake: Deps,
    who: Anyone,
    token: Annotated[str | None, Query(max_length=100, pattern=FOLLOW_TOKEN)] = None,
) -> dict[str, Any]:
    """A reporter follows their case: with the `follow_token` of their report, or with
    their own citizen credential."""
    record = await intake.cases.record(case_id)
    own = record is not None and who.role is Role.public and who.subject != "anonymous" and (
        record.reporter is not None and record.reporter.id == who.subject
    )  # fmt: skip
    if record is None or not (own or may_follow(intake.follow_key, case_id, token)):
        # The same answer for "no such case" and "not yours": nothing to probe.
        raise not_found(("path", "case_id"), f"no case {case_id} for this token")
    merged = await intake.cases.record(record.merged_into) if record.merged_into else None
    cls = intake.pack.classes.get((record.kind, record.class_code or ""))  # type: ignore[arg-type]
    name = cls.name if cls else record.class_code or ""
    encoded: dict[str, Any] = jsonable_encoder(public_view(record, name, merged))
    return encoded


def _task(record: CaseRecord) -> dict[str, Any]:
    return {
        "case_id": record.case_id,
        "kind": record.kind,
        "class_code": record.class_code,
        "grid_code": record.grid_code,
        "point": record.point,
        "description": record.description,
        "channel": record.channel,
        "reported_at": record.reported_at,
        "verifier": record.verifier,
        "due": record.verification_due,
        "state": record.state,
        "version": record.version,
    }


@router.get("/tasks/verification", responses=refusals(401, 403))
async def verification_tasks(
    intake: Deps,
    who: TaskReader,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Citizen reports awaiting verification (核实), soonest due first: a supervisor's are
    those of the grids they patrol; the supervision centre sees all."""
    grids = intake.pack.supervised_by(who.subject) if who.role is Role.supervisor else None
    tasks = await intake.cases.awaiting_verification(grids, limit)
    encoded: list[dict[str, Any]] = jsonable_encoder([_task(t) for t in tasks])
    return encoded


@router.get("/tasks/filing", responses=refusals(401, 403))
async def filing_tasks(
    intake: Deps,
    who: Centre,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Reports awaiting a filing decision (立案 or 作废): verified citizen reports and
    supervisors' reports, oldest first."""
    tasks = await intake.cases.awaiting_filing(limit)
    encoded: list[dict[str, Any]] = jsonable_encoder([_task(t) for t in tasks])
    return encoded


# Room for the largest upload and its multipart framing.
UPLOAD_BODY = MAX_UPLOAD + 64 * 1024


def create_app(intake: Intake, limits: HttpLimits | None = None) -> FastAPI:
    app = FastAPI(title="gridloop intake", version="0.3.0")
    app.state.intake = intake
    app.state.credentials = intake.credentials
    app.include_router(router)
    app.include_router(audit_router)
    app.include_router(open311, prefix="/open311/v2")
    app.include_router(feedback)
    app.include_router(callbacks)
    app.include_router(erasure)
    app.include_router(knowledge)
    app.include_router(opt_out)
    app.include_router(bulk)
    app.include_router(self_handling)
    app.include_router(checks)  # GET /tasks/check: 核查
    install_error_handlers(app)
    harden(app, "intake", limits or HttpLimits(), {"/media": UPLOAD_BODY})
    add_ops_routes(app)
    return app
