"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2/): the mapping. Pure.

The catalogue becomes the service list (`service_code` is `<kind>-<class code>`, e.g.
`component-0101`, `event-0102`; `group` is the major class); a posted request becomes a
citizen report through the website channel (`to_report`); a case becomes a service request
without anything about people (`request_view`). Answers are rendered as JSON or as XML built
with the standard library (`render`); XML input is parsed with defusedxml (`parse_xml_form`),
so no entity is ever expanded. The routes are in `open311_api.py`.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from pydantic import ValidationError

from gridloop.cases.reader import CaseQuery
from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack
from gridloop.citypack.model import EventClass
from gridloop.lifecycle import OPEN_STATES, State
from schemas.events import Channel, Point
from schemas.limits import LAT_MAX, LON_MAX
from services.intake.requests import ReporterIn, ReportIn

Format = Literal["json", "xml"]
FORMATS: tuple[Format, ...] = ("json", "xml")
MEDIA_TYPES: dict[Format, str] = {
    "json": "application/json; charset=utf-8",
    "xml": "text/xml; charset=utf-8",
}
CHANGESET = "2026-11-29T00:00:00Z"  # when this endpoint last changed (discovery)
DEFAULT_RANGE = timedelta(days=90)  # GET requests without dates: the most recent 90 days
MAX_REQUESTS = 1000  # GET requests answers at most this many, newest first
MAX_XML_BODY = 64 * 1024
# The fields of a service request, in the spec's order: everything GET requests answers.
REQUEST_FIELDS = (
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
)
SERVICE_FIELDS = (
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
)
# The form fields of POST requests (GeoReport v2), all optional but service_code.
POST_FIELDS = frozenset(
    {
        "jurisdiction_id",
        "service_code",
        "lat",
        "long",
        "address_string",
        "address_id",
        "email",
        "device_id",
        "account_id",
        "first_name",
        "last_name",
        "phone",
        "description",
        "media_url",
        "api_key",
    }
)


class Open311Error(Exception):
    """A refusal in the Open311 shape: `[{"code": status, "description": ...}]`."""

    def __init__(self, status: int, description: str, headers: dict[str, str] | None = None):
        super().__init__(description)
        self.status, self.description, self.headers = status, description, headers


def bad(field: str, reason: str) -> Open311Error:
    """400 naming the field at fault."""
    return Open311Error(400, f"{field}: {reason}")


# --- the catalogue ---------------------------------------------------------------------


def service_code(cls: EventClass) -> str:
    """Stable across releases: the class's kind and its CJ/T 214 / GB/T 47678.5 code."""
    return f"{cls.kind}-{cls.code}"


def find_class(pack: CityPack, code: str) -> EventClass | None:
    kind, _, class_code = code.partition("-")
    return pack.classes.get((kind, class_code))  # type: ignore[arg-type]


def group_of(pack: CityPack, cls: EventClass) -> str:
    """The major class (大类) the class belongs to; without majors in the pack, its kind."""
    major = pack.majors.get((cls.kind, cls.major))
    if major is not None:
        return major.name
    return "部件 components" if cls.kind == "component" else "事件 events"


def _duration(limit: timedelta) -> str:
    hours = limit.total_seconds() / 3600
    if hours >= 24 and hours % 24 == 0:
        return f"{int(hours // 24)} day(s)"
    return f"{hours:g} hour(s)"


def service(pack: CityPack, cls: EventClass) -> dict[str, Any]:
    owner = pack.departments.get(cls.owner)
    clock = "working time" if cls.clock == "working" else "natural time"
    return {
        "service_code": service_code(cls),
        "service_name": cls.name,
        "description": (
            f"{cls.name}: handled by {owner.name if owner else cls.owner} "
            f"within {_duration(cls.handle_limit)} ({clock})"
        ),
        "metadata": False,  # no attributes: the definition's list is empty
        "type": "realtime",
        "keywords": ", ".join([cls.kind, cls.code, group_of(pack, cls)]),
        "group": group_of(pack, cls),
    }


def services(pack: CityPack) -> list[dict[str, Any]]:
    """The catalogue, grouped by major class: ordered by kind, major, then code."""
    ordered = sorted(pack.classes.values(), key=lambda c: (c.kind, c.major, c.code))
    return [service(pack, c) for c in ordered]


def service_definition(cls: EventClass) -> dict[str, Any]:
    return {"service_code": service_code(cls), "attributes": []}


def discovery(pack: CityPack, base_url: str) -> dict[str, Any]:
    return {
        "changeset": CHANGESET,
        "contact": f"the supervision centre of {pack.city.district.name}",
        "key_service": "api_key: a gridloop credential (gridloop credentials issue public APP)",
        "endpoints": [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": base_url,
                "changeset": CHANGESET,
                "type": "production",
                "formats": ["application/json", "text/xml"],
            }
        ],
    }


def check_jurisdiction(pack: CityPack, jurisdiction_id: str | None) -> None:
    """One jurisdiction per intake: the district, by its GB/T 2260 code."""
    if jurisdiction_id is not None and jurisdiction_id != pack.city.district.code:
        raise Open311Error(
            404,
            f"jurisdiction_id: no jurisdiction {jurisdiction_id!r} here; "
            f"this is {pack.city.district.code}",
        )


# --- statuses and the service request view ---------------------------------------------

STATUS_NOTES: dict[State, str] = {
    State.reported: "received; awaiting verification on site",
    State.verified: "verified on site; awaiting filing",
    State.filed: "filed",
    State.dispatched: "dispatched to the responsible agency",
    State.returned: "returned by the agency; being dispatched again",
    State.parked: "on hold at the agency",
    State.handled: "handled by the agency; awaiting a check on site",
    State.checked: "checked on site",
    State.rework: "the check on site failed; sent back for rework",
    State.closed: "closed after a check on site",
    State.evaluated: "closed; feedback received",
    State.voided: "voided",
    State.merged: "a duplicate of another request",
    State.answered: "answered directly from the city's knowledge base",
    State.self_handled: "fixed on the spot by the grid's supervisor or manager",
}


def status_of(state: str) -> Literal["open", "closed"]:
    """Open311's two statuses: open while the loop runs, closed once it ended (closed,
    evaluated, voided, merged into another request)."""
    return "open" if State(state) in OPEN_STATES else "closed"


def states_for(status: str) -> list[str]:
    return sorted(s.value for s in State if status_of(s) == status)


def w3c(at: Any, tz: ZoneInfo) -> str | None:
    """A W3C datetime in the city's time, e.g. 2026-03-02T09:15:00+08:00."""
    if not isinstance(at, datetime):
        return None
    when: datetime = at if at.tzinfo else at.replace(tzinfo=UTC)
    return when.astimezone(tz).isoformat(timespec="seconds")


def _last_reason(record: CaseRecord, kind: str) -> str | None:
    reasons = [e.reason for e in record.timeline if e.type == kind]
    return reasons[-1] if reasons and reasons[-1] else None


def status_notes(record: CaseRecord) -> str:
    state = record.state
    note = STATUS_NOTES[state]
    if state is State.merged and record.merged_into:
        return f"a duplicate of request {record.merged_into}"
    if state is State.voided and (reason := _last_reason(record, "case.voided")):
        return f"voided: {reason}"
    if record.case_number and state is not State.reported:
        return f"{note} (case {record.case_number})"
    return note


def request_view(record: CaseRecord, pack: CityPack) -> dict[str, Any]:
    """A case as an Open311 service request: exactly REQUEST_FIELDS, and nothing about the
    people (reporter, phone, staff) — whoever asks."""
    tz = ZoneInfo(pack.city.timezone)
    cls = pack.classes.get((record.kind, record.class_code))  # type: ignore[arg-type]
    agency = record.department or (cls.owner if cls else None)
    department = pack.departments.get(agency) if agency else None
    lon, lat = record.point.coordinates if record.point else (None, None)
    view = {
        "service_request_id": record.case_id,
        "status": status_of(record.state),
        "status_notes": status_notes(record),
        "service_name": cls.name if cls else None,
        "service_code": service_code(cls) if cls else None,
        "description": record.description,
        "agency_responsible": department.name if department else agency,
        "service_notice": None,
        "requested_datetime": w3c(record.reported_at, tz),
        "updated_datetime": w3c(record.updated_at, tz),
        "expected_datetime": w3c(record.deadline, tz),
        "address": record.address,
        "address_id": None,
        "zipcode": None,
        "lat": lat,
        "long": lon,
        "media_url": None,  # photos are evidence for staff (GET /media/{id}), not published
    }
    assert tuple(view) == REQUEST_FIELDS
    return view


def posted(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The answer to POST requests, from intake's answer to the report."""
    if answer.get("merged_into"):
        notice = f"a duplicate of open request {answer['merged_into']}: followed there"
    elif answer.get("state") == "reported":
        notice = "received: a grid supervisor verifies it on site"
    else:
        notice = f"received ({answer.get('state')})"
    return {"service_request_id": answer["case_id"], "service_notice": notice, "account_id": None}


# --- POST requests: the form to a report -------------------------------------------------

# Where intake's fields come from in the Open311 form, to name the field at fault.
_FORM_FIELD = {
    "point": "lat",
    "lat": "lat",
    "lon": "long",
    "address": "address_string",
    "description": "description",
    "name": "first_name",
    "phone": "phone",
    "media": "media_url",
    "class_code": "service_code",
    "kind": "service_code",
    "grid_code": "lat",
}


def form_field(loc: Sequence[str | int]) -> str:
    """The Open311 form field for an intake field location, e.g. ("body", "point")."""
    for part in reversed(loc):
        if isinstance(part, str) and part in _FORM_FIELD:
            return _FORM_FIELD[part]
    return str(loc[-1]) if loc else "request"


def _coordinate(form: Mapping[str, str], name: str, limit: float) -> float:
    try:
        value = float(form[name])
    except ValueError:
        raise bad(name, f"{form[name]!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > limit:
        raise bad(name, f"{value} is out of range")
    return value


def media_id(url: str) -> str:
    """The id of a file uploaded to this intake (`POST /media`), from its URL."""
    path = url.split("?", 1)[0].rstrip("/")
    head, _, last = path.rpartition("/")
    if not head.endswith("/media") or not last:
        raise bad(
            "media_url",
            "only a file uploaded to this intake (POST /media, then …/media/<media_id>) "
            "can be attached",
        )
    return last


def to_report(form: Mapping[str, str], pack: CityPack) -> ReportIn:
    """A posted service request as a citizen report through the website channel.

    `lat` and `long` are required: addresses are not geocoded here (`address_string` is
    kept as the report's address). `first_name`/`last_name` and `phone` become the
    reporter's, seen only by the roles allowed to; `email` is not kept at all.
    """
    code = (form.get("service_code") or "").strip()
    if not code:
        raise bad("service_code", "required")
    cls = find_class(pack, code)
    if cls is None:
        raise bad("service_code", f"no service {code!r}; see services.json")
    has_lat, has_long = bool(form.get("lat")), bool(form.get("long"))
    if not (has_lat and has_long):
        missing = "long" if has_lat else "lat"
        reason = "required with long" if missing == "lat" else "required with lat"
        if not (has_lat or has_long) and (form.get("address_string") or form.get("address_id")):
            reason = "required: this jurisdiction locates requests by lat and long only"
        raise bad(missing, reason)
    lat = _coordinate(form, "lat", LAT_MAX)
    lon = _coordinate(form, "long", LON_MAX)
    name = " ".join(p.strip() for p in (form.get("first_name"), form.get("last_name")) if p)
    description = (form.get("description") or "").strip() or cls.name
    media = [media_id(form["media_url"])] if form.get("media_url") else []
    try:
        return ReportIn(
            channel=Channel.website,
            kind=cls.kind,
            class_code=cls.code,
            point=Point(lon=lon, lat=lat),
            address=form.get("address_string") or None,
            description=description,
            reporter=ReporterIn(name=name or None, phone=form.get("phone") or None),
            media=media,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise bad(form_field(first["loc"]), first["msg"]) from None


def parse_xml_form(body: bytes) -> dict[str, str]:
    """A request posted as XML (`<request><service_code>…</service_code>…</request>`, an
    extension: the spec posts forms), parsed without expanding any entity or DTD."""
    if len(body) > MAX_XML_BODY:
        raise Open311Error(413, f"request: larger than {MAX_XML_BODY} bytes")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (DefusedXmlException, ET.ParseError) as exc:
        raise bad("request", f"not acceptable XML ({type(exc).__name__})") from None
    if root.tag not in ("request", "service_request"):
        raise bad("request", f"the root element must be <request>, not <{root.tag}>")
    form: dict[str, str] = {}
    for child in root:
        if child.tag in POST_FIELDS and len(child) == 0:
            form[child.tag] = (child.text or "").strip()
    return form


# --- GET requests: the filters -------------------------------------------------------------


def _listed(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def parse_datetime(value: str, field: str) -> datetime:
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise bad(
            field, f"{value!r} is not a W3C datetime (e.g. 2026-03-02T09:00:00+08:00)"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def filters(
    pack: CityPack,
    now: datetime,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
) -> CaseQuery:
    """The filters of GET requests; `service_request_id` overrides all others."""
    if ids := _listed(service_request_id):
        return CaseQuery(ids=tuple(ids[:MAX_REQUESTS]))
    classes = []
    for code in _listed(service_code):
        cls = find_class(pack, code)
        if cls is None:
            raise bad("service_code", f"no service {code!r}")
        classes.append((cls.kind, cls.code))
    states: set[str] = set()
    for s in _listed(status):
        if s not in ("open", "closed"):
            raise bad("status", f"{s!r}: open or closed")
        states.update(states_for(s))
    start = parse_datetime(start_date, "start_date") if start_date else None
    end = parse_datetime(end_date, "end_date") if end_date else None
    if start and end and end < start:
        raise bad("end_date", "before start_date")
    if start is None and end is None:
        start = now - DEFAULT_RANGE
    return CaseQuery((), tuple(classes), tuple(sorted(states)), start, end)


# --- rendering -----------------------------------------------------------------------------

# XML: the element of each item of a list (the spec's plural → singular).
_ITEM = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
    "attributes": "attribute",
    "values": "value",
}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _fill(ET.SubElement(element, key), inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            _fill(ET.SubElement(element, _ITEM[element.tag]), inner)
    else:
        element.text = _text(value)


def to_xml(root: str, value: Any) -> bytes:
    """XML built by the standard library: text is escaped, never parsed."""
    element = ET.Element(root)
    _fill(element, value)
    text: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=True)
    return text


def render(fmt: Format, root: str, value: Any) -> bytes:
    """`value` as JSON, or as XML under `root` (e.g. services, service_requests)."""
    if fmt == "json":
        return json.dumps(value, ensure_ascii=False).encode()
    return to_xml(root, value)


def errors(error: Open311Error) -> list[dict[str, Any]]:
    return [{"code": error.status, "description": error.description}]


def fmt_of(value: str) -> Format:
    for fmt in FORMATS:
        if value == fmt:
            return fmt
    raise Open311Error(404, f"format: .{value} is not served; use .json or .xml")


def each(records: Iterable[CaseRecord], pack: CityPack) -> list[dict[str, Any]]:
    """The public requests of `records`: a dispute between residents (矛盾纠纷) is none."""
    return [request_view(r, pack) for r in records if r.kind != "dispute"]
