"""Intake's HTTP API (FastAPI). Answers 202 only once Kafka acknowledged the events.

Who may call what (bearer credentials, `gridloop.auth`):

- `POST /reports`: website: anyone; hotline: hotline operators; supervisor: supervisors
- `POST /reports/batch` (`bulk.py`): up to 500 reports, all or none, each as `POST /reports`
- `POST /media`: anyone who may report (photos, voice notes)
- `GET /media/{id}`, `GET /cases/{id}`: staff (`STAFF`); reporters' names and phones only to
  hotline, supervision centre and admin; a department only its own cases
- `GET /cases/{id}/public`: the reporter, by follow token or their own citizen credential
- `POST /cases/{id}/verification`, `/check`: supervisors; `GET /tasks/verification`: also
  the supervision centre
- `POST /cases/{id}/file`, `/void`, `/merge`, `/split`, `GET /tasks/filing`: supervision centre
- `POST /cases/{id}/feedback` (`feedback.py`): the reporter, as for `/public`; hotline
- `/open311/v2/…` (GeoReport v2, `open311_api.py`): anyone reads; posting needs an `api_key`
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Header, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.audit import personal_read
from gridloop.audit import router as audit_router
from gridloop.auth import CredentialStore, Principal, Role, require
from gridloop.citypack import CityPack
from gridloop.errors import Rejected, install_error_handlers, publish_or_refuse, refusals
from gridloop.http import HttpLimits, harden
from gridloop.idempotency import Answer, IdempotencyStore
from gridloop.kafka import EventProducer
from gridloop.mongo import Document
from gridloop.runtime import add_ops_routes
from schemas import clock
from schemas.envelope import Envelope
from schemas.events import CaseEvent, CaseFiled, CaseMerged, CaseReported, Channel
from services.intake.core import (
    CheckIn,
    FileIn,
    MergeIn,
    ReportIn,
    SplitIn,
    VerificationIn,
    VoidIn,
    decide_check,
    decide_file,
    decide_merge,
    decide_report,
    decide_split,
    decide_verification,
    decide_void,
    local_day,
    to_file,
    with_number,
)
from services.intake.duplicates import Nearby
from services.intake.media import MAX_UPLOAD, MEDIA_CONTENT_TYPES, MediaStore
from services.intake.numbering import CaseNumbers
from services.intake.search import DuplicateSearch
from services.intake.views import (
    department_may_read,
    follow_token,
    may_follow,
    personal_fields,
    public_view,
    staff_view,
)
from services.projections.core import CaseView
from services.projections.store import CaseStore

SOURCE = "/gridloop/intake"
_CASE_NAMESPACE = uuid.UUID("0d7b3a4e-2f7e-4bd4-8f53-9d61d1f0c3a1")
STAFF = (
    Role.supervision_centre,
    Role.command_centre,
    Role.supervisor,
    Role.hotline,
    Role.department,
    Role.admin,
)
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return clock.now()


async def follow_key(db: AsyncDatabase[Document]) -> bytes:
    """The key of reporters' follow tokens: made once per database, kept there."""
    keys = db["intake_keys"]
    await keys.update_one(
        {"_id": "follow"}, {"$setOnInsert": {"key": secrets.token_hex(32)}}, upsert=True
    )
    doc = await keys.find_one({"_id": "follow"})
    assert doc is not None
    return bytes.fromhex(doc["key"])


class Intake:
    """What the routes need; built once by the service's bootstrap."""

    def __init__(
        self,
        pack: CityPack,
        producer: EventProducer,
        db: AsyncDatabase[Document],
        follow_key: bytes,
        clock: Clock = _utcnow,
    ) -> None:
        self.pack, self.producer, self.clock = pack, producer, clock
        self.cases = CaseStore(db)
        self.idempotency = IdempotencyStore(db)
        self.credentials = CredentialStore(db)
        self.media = MediaStore(db)
        self.numbers = CaseNumbers(db)
        self.search = DuplicateSearch(self.cases.cases, pack, clock)
        self.follow_key = follow_key

    @classmethod
    async def build(
        cls, pack: CityPack, producer: EventProducer, db: AsyncDatabase[Document]
    ) -> Intake:
        intake = cls(pack, producer, db, await follow_key(db))
        await intake.idempotency.create_indexes()
        await intake.numbers.adopt_counters(local_day(pack, intake.clock()))
        # The duplicate search's `near` index, should intake start before projections.
        await intake.cases.create_indexes()
        return intake

    async def publish(self, events: Sequence[CaseEvent]) -> list[str]:
        """Publish `events`; their event ids, for the answer."""
        envelopes = [Envelope(e, SOURCE) for e in events]
        await publish_or_refuse(self.producer, envelopes)
        return [env.id for env in envelopes]

    async def doc(self, case_id: str, loc: tuple[str, ...] = ("path", "case_id")) -> Document:
        doc = await self.cases.get(case_id)
        if doc is None:
            raise Rejected(404, loc, f"no case {case_id}", "not_found")
        return doc

    async def case(self, case_id: str, loc: tuple[str, ...] = ("path", "case_id")) -> CaseView:
        return CaseView.from_doc(await self.doc(case_id, loc))

    async def numbered(
        self, events: list[CaseEvent], redo: Callable[[str], list[CaseEvent]], fresh: bool = False
    ) -> list[CaseEvent]:
        """`events` again with a case number, if they file the case (`fresh`: a case id
        made just now, see `CaseNumbers.number_for`)."""
        filed = to_file(events)
        if filed is None:
            return events
        day = local_day(self.pack, self.clock())
        case, kind, code = filed.case_id, filed.kind, filed.class_code
        return redo(await self.numbers.number_for(case, kind, code, day, fresh))

    async def check_media(self, ids: list[str], loc: tuple[str, ...]) -> None:
        if missing := await self.media.missing(ids):
            raise Rejected(422, loc, f"no uploaded media {', '.join(missing)}", "unknown_media")


async def _intake(request: Request) -> Intake:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a hop per request.
    intake: Intake = request.app.state.intake
    return intake


Deps = Annotated[Intake, Depends(_intake)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
Anyone = Annotated[Principal, Depends(require(Role.public))]
Staff = Annotated[Principal, Depends(require(*STAFF))]
Supervisor = Annotated[Principal, Depends(require(Role.supervisor))]
Centre = Annotated[Principal, Depends(require(Role.supervision_centre))]
TaskReader = Annotated[Principal, Depends(require(Role.supervisor, Role.supervision_centre))]
router = APIRouter()


class Accepted(BaseModel):
    """A command's 202: the case's state and version after it, and the events published."""

    case_id: str
    state: str
    version: int
    events: list[str]
    case_number: str | None = None  # when the command filed the case
    merged_into: str | None = None  # when the report was a duplicate
    follow_token: str | None = None  # a citizen's report: to follow it


class Stored(BaseModel):
    """An upload, as kept: name its `media_id` in a report or verification."""

    media_id: str
    content_type: str
    kind: str
    size: int
    sha256: str


# What each kind of route answers, and may refuse with besides 422 (FastAPI documents it).
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": Accepted, "description": "Published: Kafka acknowledged the events"}
}
ACT = ACCEPTED | refusals(400, 401, 403, 404, 409, 503)
READ = refusals(401, 403, 404)
FOLLOW_TOKEN = r"^[A-Za-z0-9_-]+$"  # as `follow_token` makes them: ASCII, for compare_digest
MEDIA_READ: dict[int | str, dict[str, Any]] = {
    200: {"description": "The file", "content": {t: {} for t in MEDIA_CONTENT_TYPES}},
    **READ,
}


def _accepted(events: Sequence[CaseEvent], ids: Sequence[str] = (), **extra: Any) -> Answer:
    """The 202 of `events`; `ids`: their event ids if `publish` gave them already (an id
    is a UUIDv5 of the event: not free)."""
    last = events[-1]
    body: dict[str, Any] = {
        "case_id": last.case_id,
        "state": last.ce_type.rsplit(".", 1)[-1],
        "version": last.version,
        "events": list(ids) or [Envelope(e, SOURCE).id for e in events],
    }
    for e in events:
        if isinstance(e, CaseFiled) and e.case_number:
            body["case_number"] = e.case_number
        if isinstance(e, CaseMerged):
            body["merged_into"] = e.into_case_id
    return 202, body | extra


def _scope(name: str, who: Principal) -> str:
    """Idempotency keys are the caller's own: two callers' equal keys never meet."""
    return f"{name}:{who.role.value}:{who.subject}"


async def _once(
    intake: Intake,
    name: str,
    who: Principal,
    key: str | None,
    body: str,
    work: Callable[[], Awaitable[Answer]],
) -> JSONResponse:
    return await intake.idempotency.once(_scope(name, who), key, body.encode(), work)


@router.post("/reports", status_code=202, responses=ACCEPTED | refusals(400, 401, 403, 503))
async def submit_report(
    report: ReportIn, intake: Deps, who: Anyone, key: IdempotencyKey = None
) -> JSONResponse:
    """Submit a report (信息收集). Website reports answer with a `follow_token`."""
    return await accept_report(intake, report, who, key)


async def accept_report(
    intake: Intake, report: ReportIn, who: Principal, key: str | None
) -> JSONResponse:
    """A report decided, numbered and published, once per `Idempotency-Key` (also the
    path of Open311's POST requests)."""
    # With a key, the case id is derived from it: a retry yields the very same events.
    case_id = str(uuid.uuid5(_CASE_NAMESPACE, f"{_scope('report', who)}:{key}") if key else (
        uuid.uuid4()
    ))  # fmt: skip

    async def work() -> Answer:
        await intake.check_media(report.media, ("body", "media"))
        now = intake.clock()

        def decide(nearby: Sequence[Nearby] = (), number: str | None = None) -> list[CaseEvent]:
            return decide_report(report, intake.pack, case_id, who, now, nearby, number)

        first = decide()
        reported = first[0]
        assert isinstance(reported, CaseReported)
        nearby = await intake.search.nearby(reported)
        # Without candidates the first decision stands: decide_report is not cheap.
        decided = decide(nearby) if nearby else first
        # Numbered as deciding again with the number would: the filing takes it.
        events = await intake.numbered(
            decided, lambda n: with_number(decided, n), fresh=key is None
        )
        ids = await intake.publish(events)
        extra = {}
        if report.channel is not Channel.supervisor:
            extra["follow_token"] = follow_token(intake.follow_key, case_id)
        return _accepted(events, ids, **extra)

    # The fingerprint matters only under a key (≈ 8 µs a report without one).
    fingerprint = report.model_dump_json() if key else ""
    return await _once(intake, "report", who, key, fingerprint, work)


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
    """Upload a photo (JPEG, PNG, WebP ≤ 10 MiB) or voice note (AMR, MP3, M4A, WAV, Ogg
    ≤ 5 MiB); name its `media_id` in a report or verification."""
    data = await file.read(MAX_UPLOAD + 1)
    stored = await intake.media.put(data, file.filename or "upload", who)
    return JSONResponse(stored, status_code=201)


@router.get("/media/{media_id}", response_class=Response, responses=MEDIA_READ)
async def read_media(media_id: str, intake: Deps, who: Staff) -> Response:
    data, content_type = await intake.media.get(media_id)
    return Response(data, media_type=content_type)


@router.post("/cases/{case_id}/verification", status_code=202, responses=ACT)
async def verify(
    case_id: str,
    answer: VerificationIn,
    intake: Deps,
    who: Supervisor,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """A supervisor's verification (核实) of a citizen report: confirmed or refuted."""

    async def work() -> Answer:
        await intake.check_media(answer.media, ("body", "media"))
        case = await intake.case(case_id)
        auto = intake.pack.city.intake.auto_file

        def decide(number: str | None = None) -> list[CaseEvent]:
            return decide_verification(case, answer, who, auto, number)

        events = await intake.numbered(decide(), decide)
        await intake.publish(events)
        return _accepted(events)

    body = f"{case_id}:{answer.model_dump_json()}"
    return await _once(intake, "verification", who, key, body, work)


@router.post("/cases/{case_id}/check", status_code=202, responses=ACT)
async def check(
    case_id: str, answer: CheckIn, intake: Deps, who: Supervisor, key: IdempotencyKey = None
) -> JSONResponse:
    """A supervisor's on-site check (核查) of a handled case: closed, or back to rework."""

    async def work() -> Answer:
        events = decide_check(await intake.case(case_id), answer, who)
        await intake.publish(events)
        return _accepted(events)

    return await _once(intake, "check", who, key, f"{case_id}:{answer.model_dump_json()}", work)


@router.post("/cases/{case_id}/file", status_code=202, responses=ACT)
async def file_case(
    case_id: str, answer: FileIn, intake: Deps, who: Centre, key: IdempotencyKey = None
) -> JSONResponse:
    """File the case (立案) with a case number: class + date + sequence."""

    async def work() -> Answer:
        case = await intake.case(case_id)
        events = await intake.numbered(
            decide_file(case, answer, who, None), lambda n: decide_file(case, answer, who, n)
        )
        await intake.publish(events)
        return _accepted(events)

    return await _once(intake, "file", who, key, f"{case_id}:{answer.model_dump_json()}", work)


@router.post("/cases/{case_id}/void", status_code=202, responses=ACT)
async def void_case(
    case_id: str, answer: VoidIn, intake: Deps, who: Centre, key: IdempotencyKey = None
) -> JSONResponse:
    """Void the report (作废), saying why."""

    async def work() -> Answer:
        events = decide_void(await intake.case(case_id), answer, who)
        await intake.publish(events)
        return _accepted(events)

    return await _once(intake, "void", who, key, f"{case_id}:{answer.model_dump_json()}", work)


@router.post("/cases/{case_id}/merge", status_code=202, responses=ACT)
async def merge_case(
    case_id: str, answer: MergeIn, intake: Deps, who: Centre, key: IdempotencyKey = None
) -> JSONResponse:
    """Merge a report into another open case of the same problem (its reporter is linked)."""

    async def work() -> Answer:
        case = await intake.case(case_id)
        into = await intake.case(answer.into_case_id, ("body", "into_case_id"))
        events = decide_merge(case, into, answer, who)
        await intake.publish(events)
        return _accepted(events)

    return await _once(intake, "merge", who, key, f"{case_id}:{answer.model_dump_json()}", work)


@router.post("/cases/{case_id}/split", status_code=202, responses=ACT)
async def split_case(
    case_id: str, answer: SplitIn, intake: Deps, who: Centre, key: IdempotencyKey = None
) -> JSONResponse:
    """Split a merged report off: a case of its own again, to verify or file."""

    async def work() -> Answer:
        doc = await intake.doc(case_id)
        events = decide_split(CaseView.from_doc(doc), doc.get("merged_into"), answer, who)
        await intake.publish(events)
        return _accepted(events)

    return await _once(intake, "split", who, key, f"{case_id}:{answer.model_dump_json()}", work)


@router.get("/cases/{case_id}", responses=READ)
async def read_case(case_id: str, intake: Deps, who: Staff, request: Request) -> dict[str, Any]:
    """The case as projected from the event log: state and the whole timeline. Showing a
    reporter's name or phone is recorded in the audit trail first."""
    doc = await intake.doc(case_id)
    if not department_may_read(doc, who):
        raise Rejected(404, ("path", "case_id"), f"no case {case_id}", "not_found")
    duplicates = await intake.cases.cases.count_documents({"merged_into": case_id})
    view = staff_view(doc, who, duplicates)
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
    doc = await intake.cases.get(case_id)
    own = doc is not None and who.role is Role.public and who.subject != "anonymous" and (
        (doc.get("reporter") or {}).get("id") == who.subject
    )  # fmt: skip
    if doc is None or not (own or may_follow(intake.follow_key, case_id, token)):
        # The same answer for "no such case" and "not yours": nothing to probe.
        raise Rejected(404, ("path", "case_id"), f"no case {case_id} for this token", "not_found")
    merged = await intake.cases.get(doc["merged_into"]) if doc.get("merged_into") else None
    cls = intake.pack.classes.get((doc["kind"], doc["class_code"]))
    encoded: dict[str, Any] = jsonable_encoder(
        public_view(doc, cls.name if cls else doc["class_code"], merged)
    )
    return encoded


def _task(doc: Document) -> Document:
    return {
        "case_id": doc["_id"],
        "kind": doc.get("kind"),
        "class_code": doc.get("class_code"),
        "grid_code": doc.get("grid_code"),
        "point": doc.get("point"),
        "description": doc.get("description"),
        "channel": doc.get("channel"),
        "reported_at": doc.get("reported_at"),
        "verifier": doc.get("verifier"),
        "due": doc.get("verification_due"),
        "state": doc.get("state"),
        "version": doc.get("version"),
    }


@router.get("/tasks/verification", responses=refusals(401, 403))
async def verification_tasks(
    intake: Deps,
    who: TaskReader,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Citizen reports awaiting verification (核实), soonest due first: a supervisor's are
    those of the grids they patrol; the supervision centre sees all."""
    query: Document = {"state": "reported", "channel": {"$ne": "supervisor"}}
    if who.role is Role.supervisor:
        query["grid_code"] = {"$in": intake.pack.supervised_by(who.subject)}
    cursor = intake.cases.cases.find(query).sort("verification_due", 1).limit(limit)
    encoded: list[dict[str, Any]] = jsonable_encoder([_task(d) async for d in cursor])
    return encoded


@router.get("/tasks/filing", responses=refusals(401, 403))
async def filing_tasks(
    intake: Deps,
    who: Centre,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Reports awaiting a filing decision (立案 or 作废): verified citizen reports and
    supervisors' reports, oldest first."""
    query: Document = {
        "$or": [{"state": "verified"}, {"state": "reported", "channel": "supervisor"}]
    }
    cursor = intake.cases.cases.find(query).sort("reported_at", 1).limit(limit)
    encoded: list[dict[str, Any]] = jsonable_encoder([_task(d) async for d in cursor])
    return encoded


# Room for the largest upload and its multipart framing.
UPLOAD_BODY = MAX_UPLOAD + 64 * 1024


def create_app(intake: Intake, limits: HttpLimits | None = None) -> FastAPI:
    app = FastAPI(title="gridloop intake", version="0.2.0")
    app.state.intake = intake
    app.state.credentials = intake.credentials
    app.include_router(router)
    app.include_router(audit_router)
    from services.intake.open311_api import router as open311  # it builds on this module

    app.include_router(open311, prefix="/open311/v2")
    from services.intake.feedback import router as feedback  # residents' satisfaction

    app.include_router(feedback)
    from services.intake.bulk import router as bulk  # it builds on this module too

    app.include_router(bulk)
    install_error_handlers(app)
    harden(app, "intake", limits or HttpLimits(), {"/media": UPLOAD_BODY})
    add_ops_routes(app)
    return app
