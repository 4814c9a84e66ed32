"""Open311 GeoReport v2 on intake, under `/open311/v2`: thin routes over `open311.py`.

Every endpoint answers `.json` or `.xml`, takes `jurisdiction_id` (the district's code) and
refuses in the Open311 shape (`[{"code", "description"}]`, `<errors><error>…`). Reading is
public and shows nothing about people. Posting needs an `api_key`: a gridloop credential of
role `public` (an app's key: `gridloop credentials issue public <app>`) or `hotline`; the
request becomes a citizen report through the website channel, by the same decision code as
`POST /reports`, once per `Idempotency-Key`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from gridloop.auth import Principal, Role
from gridloop.errors import STATUS
from gridloop.refusal import Refused
from services.intake.edge import asked, new_case_id
from services.intake.handlers import Intake
from services.intake.open311 import (
    FORMATS,
    MAX_REQUESTS,
    MEDIA_TYPES,
    POST_FIELDS,
    Format,
    Open311Error,
    check_jurisdiction,
    discovery,
    each,
    errors,
    filters,
    find_class,
    fmt_of,
    form_field,
    parse_xml_form,
    posted,
    render,
    service_definition,
    services,
    to_report,
)
from services.intake.requests import report_of

# Who may post with their credential as api_key: apps (public) and hotline operators.
POSTING_ROLES = frozenset({Role.public, Role.hotline})
MAX_FORM_BODY = 64 * 1024
# Documented as the two formats served; any other is answered 404 in the Open311 shape.
FormatPath = Annotated[str, Path(json_schema_extra={"enum": list(FORMATS)})]
Jurisdiction = Annotated[str | None, Query(description="the district's code (GB/T 2260)")]
router = APIRouter(tags=["Open311 GeoReport v2"])


class Open311Problem(BaseModel):
    """One refusal in the Open311 shape (`<errors><error>` in XML)."""

    code: int
    description: str


_ANSWER: dict[str, Any] = {"description": "The answer, as JSON or XML", "content": {"text/xml": {}}}


def _refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses`: the answer, and the Open311 refusals a route may send."""
    refused: dict[int | str, dict[str, Any]] = {
        s: {
            "model": list[Open311Problem],
            "description": "Refused, in the format asked for (else JSON)",
            "content": {"text/xml": {}},
        }
        for s in statuses
    }
    return {200: _ANSWER, **refused}


def _form_schema() -> dict[str, Any]:
    """The posted fields as OpenAPI: a form (the spec) or an XML `<request>`."""
    coordinate = {"type": "string", "pattern": r"^-?\d{1,3}(\.\d{1,10})?$"}
    fields: dict[str, Any] = {f: {"type": "string", "maxLength": 2000} for f in sorted(POST_FIELDS)}
    fields |= {"lat": coordinate, "long": coordinate}
    schema = {"type": "object", "properties": fields, "required": ["service_code"]}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": schema},
                "application/xml": {"schema": schema | {"xml": {"name": "request"}}},
            },
        }
    }


Work = Callable[[Format], Awaitable[tuple[str, Any]]]


def _intake(request: Request) -> Intake:
    intake: Intake = request.app.state.intake
    return intake


def _response(fmt: Format, root: str, value: Any, status: int = 200, **headers: str) -> Response:
    return Response(render(fmt, root, value), status, headers, MEDIA_TYPES[fmt])


async def _answer(format_: str, work: Work) -> Response:
    """Run `work`; refusals in the Open311 shape, in the format asked for (else JSON)."""
    fmt: Format = "xml" if format_ == "xml" else "json"
    try:
        root, value = await work(fmt_of(format_))
        return _response(fmt, root, value)
    except Open311Error as exc:
        return _response(fmt, "errors", errors(exc), exc.status, **(exc.headers or {}))
    except Refused as exc:  # from intake's decisions: a 422 is Open311's 400
        status = 400 if STATUS[exc.why] == 422 else STATUS[exc.why]
        headers = {"Retry-After": "5"} if status == 503 else None
        refusal = Open311Error(status, f"{form_field(exc.loc)}: {exc.reason}", headers)
        return _response(fmt, "errors", errors(refusal), status, **(headers or {}))


@router.get("/discovery.{format_}", summary="Discovery", responses=_refusals(404))
async def get_discovery(request: Request, format_: FormatPath) -> Response:
    async def work(_: Format) -> tuple[str, Any]:
        base = str(request.base_url).rstrip("/") + "/open311/v2"
        return "discovery", discovery(_intake(request).pack, base)

    return await _answer(format_, work)


@router.get(
    "/services.{format_}",
    summary="Service list: the catalogue by major class",
    responses=_refusals(404),
)
async def get_services(
    request: Request, format_: FormatPath, jurisdiction_id: Jurisdiction = None
) -> Response:
    async def work(_: Format) -> tuple[str, Any]:
        pack = _intake(request).pack
        check_jurisdiction(pack, jurisdiction_id)
        return "services", services(pack)

    return await _answer(format_, work)


@router.get(
    "/services/{service_code}.{format_}",
    summary="Service definition",
    responses=_refusals(404),
)
async def get_service_definition(
    request: Request, service_code: str, format_: FormatPath, jurisdiction_id: Jurisdiction = None
) -> Response:
    async def work(_: Format) -> tuple[str, Any]:
        pack = _intake(request).pack
        check_jurisdiction(pack, jurisdiction_id)
        cls = find_class(pack, service_code)
        if cls is None:
            raise Open311Error(404, f"service_code: no service {service_code!r}")
        return "service_definition", service_definition(cls)

    return await _answer(format_, work)


async def _form(request: Request) -> dict[str, str]:
    """The posted fields: a form (the spec), or an XML `<request>` parsed safely."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/xml", "text/xml"):
        return parse_xml_form(await request.body())
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BODY:
        raise Open311Error(413, f"request: larger than {MAX_FORM_BODY} bytes")
    try:
        form = await request.form(max_files=0)
    except Exception as exc:  # a malformed body: say so in the Open311 shape
        raise Open311Error(400, f"request: not a readable form ({type(exc).__name__})") from None
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _poster(intake: Intake, api_key: str | None) -> Principal:
    if not api_key:
        raise Open311Error(400, "api_key: required to post a service request")
    who = await intake.credentials.principal(api_key)
    if who is None:
        raise Open311Error(403, "api_key: unknown or revoked")
    if who.role not in POSTING_ROLES:
        allowed = ", ".join(sorted(r.value for r in POSTING_ROLES))
        raise Open311Error(403, f"api_key: role {who.role.value} may not post; allowed: {allowed}")
    return who


@router.post(
    "/requests.{format_}",
    summary="Create a service request (a citizen report)",
    responses=_refusals(400, 403, 404, 413, 503),
    openapi_extra=_form_schema(),
)
async def post_request(request: Request, format_: FormatPath) -> Response:
    """Form fields per GeoReport v2 (`service_code`, `lat`, `long`, `address_string`,
    `description`, `media_url`, `first_name`, `last_name`, `phone`, `email`, `api_key`);
    an `Idempotency-Key` header makes a retry return the first answer."""

    async def work(_: Format) -> tuple[str, Any]:
        intake = _intake(request)
        form = await _form(request)
        check_jurisdiction(intake.pack, form.get("jurisdiction_id"))
        who = await _poster(intake, form.get("api_key"))
        report = to_report(form, intake.pack)
        key = request.headers.get("idempotency-key")
        if key is not None and not 0 < len(key) <= 200:
            raise Open311Error(400, "Idempotency-Key: 1 to 200 characters")
        content = report.model_dump_json() if key else ""
        command = report_of(report, new_case_id("report", who, key, content=content), who)
        answer = await intake.report(command, asked("report", who, key, content))
        return "service_requests", [posted(answer.body)]

    return await _answer(format_, work)


@router.get(
    "/requests.{format_}",
    summary="Service requests, with the spec's filters",
    responses=_refusals(400, 404),
)
async def get_requests(
    request: Request,
    format_: FormatPath,
    jurisdiction_id: Jurisdiction = None,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
    page_size: str | None = None,
) -> Response:
    """Newest first, at most 1000 (`page_size` for fewer); without dates, the last 90 days;
    `service_request_id` (comma list) overrides the other filters."""

    async def work(_: Format) -> tuple[str, Any]:
        intake = _intake(request)
        check_jurisdiction(intake.pack, jurisdiction_id)
        chosen = filters(
            intake.pack,
            intake.clock(),
            service_request_id,
            service_code,
            start_date,
            end_date,
            status,
        )
        limit = MAX_REQUESTS
        if page_size is not None:
            if not page_size.isdigit() or not 0 < int(page_size) <= MAX_REQUESTS:
                raise Open311Error(400, f"page_size: 1 to {MAX_REQUESTS}")
            limit = int(page_size)
        return "service_requests", each(await intake.cases.search(chosen, limit), intake.pack)

    return await _answer(format_, work)


@router.get(
    "/requests/{service_request_id}.{format_}",
    summary="One service request",
    responses=_refusals(404),
)
async def get_request(
    request: Request,
    service_request_id: str,
    format_: FormatPath,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    async def work(_: Format) -> tuple[str, Any]:
        intake = _intake(request)
        check_jurisdiction(intake.pack, jurisdiction_id)
        record = await intake.cases.record(service_request_id)
        if record is None or record.kind == "dispute":  # residents' disputes are not public
            raise Open311Error(404, f"service_request_id: no request {service_request_id!r}")
        return "service_requests", each([record], intake.pack)

    return await _answer(format_, work)


async def _token(request: Request, token: str, format_: str, jurisdiction_id: str | None) -> (
    Response
):  # fmt: skip
    """Requests are created synchronously, so the token of a request is its id."""

    async def work(_: Format) -> tuple[str, Any]:
        intake = _intake(request)
        check_jurisdiction(intake.pack, jurisdiction_id)
        record = await intake.cases.record(token)
        if record is None:
            raise Open311Error(404, f"token: no request for token {token!r}")
        return "service_requests", [{"service_request_id": record.case_id, "token": token}]

    return await _answer(format_, work)


@router.get(
    "/tokens/{token}.{format_}",
    summary="The service request of a token",
    responses=_refusals(404),
)
async def get_token(
    request: Request, token: str, format_: FormatPath, jurisdiction_id: Jurisdiction = None
) -> Response:
    return await _token(request, token, format_, jurisdiction_id)


@router.get(
    "/tokens/{token}",
    summary="The service request of a token (JSON)",
    responses=_refusals(404),
)
async def get_token_json(
    request: Request, token: str, jurisdiction_id: Jurisdiction = None
) -> Response:
    return await _token(request, token, "json", jurisdiction_id)
