"""The Open311 GeoReport v2 mapping: catalogue to services, cases to service requests,
forms to reports, filters, and JSON/XML with the spec's field names."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridloop.cases.reader import CaseQuery
from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.lifecycle import State
from schemas.events import Channel
from services.intake.open311 import (
    REQUEST_FIELDS,
    SERVICE_FIELDS,
    Open311Error,
    check_jurisdiction,
    discovery,
    errors,
    filters,
    media_id,
    parse_xml_form,
    posted,
    render,
    request_view,
    service_definition,
    services,
    states_for,
    status_of,
    to_report,
)

PACK: CityPack = load_city_pack(DEMO_CITY_PACK)
NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def _entry(kind: str, version: int, reason: str | None = None) -> dict[str, Any]:
    return {
        "event_id": f"e-{version}",
        "type": kind,
        "version": version,
        "at": NOW,
        "reason": reason,
    }


def record(doc: dict[str, Any]) -> CaseRecord:
    """A projected case document as readers get it."""
    return CaseRecord.model_validate(doc)


CASE: dict[str, Any] = {
    "_id": "c-1",
    "state": "dispatched",
    "version": 4,
    "channel": "website",
    "kind": "event",
    "class_code": "0102",
    "point": {"type": "Point", "coordinates": [116.4035, 39.9205]},
    "description": "rubbish at the lane entrance",
    "address": "东四北大街 12号",
    "reporter": {"id": "web", "name": "李女士", "phone": "13900000000"},
    "reported_at": NOW,
    "updated_at": NOW + timedelta(minutes=30),
    "deadline": NOW + timedelta(hours=4),
    "department": "SANITATION",
    "case_number": "S0102-20260302-0001",
    "timeline": [_entry("reported", 1)],
}
FORM = {
    "service_code": "event-0102",
    "lat": "39.9205",
    "long": "116.4035",
    "description": "rubbish",
    "first_name": "Li",
    "last_name": "Na",
    "phone": "13900000000",
    "email": "li@example.org",
    "address_string": "东四北大街 12号",
}


# --- statuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("reported", "open"),
        ("verified", "open"),
        ("filed", "open"),
        ("dispatched", "open"),
        ("returned", "open"),
        ("parked", "open"),
        ("handled", "open"),
        ("checked", "open"),
        ("rework", "open"),
        ("closed", "closed"),
        ("evaluated", "closed"),
        ("voided", "closed"),
        ("merged", "closed"),
    ],
)
def test_every_state_maps_to_open_or_closed(state: str, status: str) -> None:
    assert status_of(state) == status


def test_status_filters_partition_the_states() -> None:
    assert set(states_for("open")) | set(states_for("closed")) == {s.value for s in State}
    assert not set(states_for("open")) & set(states_for("closed"))
    assert set(states_for("closed")) == {
        *("closed", "evaluated", "voided", "merged", "answered", "self_handled")
    }


# --- services -----------------------------------------------------------------------------


def test_services_are_the_catalogue_grouped_by_major_class() -> None:
    listed = services(PACK)
    assert len(listed) == len(PACK.classes)
    assert all(tuple(s) == SERVICE_FIELDS for s in listed)
    by_code = {s["service_code"]: s for s in listed}
    manhole = by_code["component-0101"]
    assert manhole["service_name"] == "上水井盖 water manhole cover"
    assert manhole["group"] == "公用设施 public utilities"
    assert manhole["metadata"] is False and manhole["type"] == "realtime"
    assert "0101" in manhole["keywords"]
    assert by_code["event-0102"]["group"] == "市容环境 city appearance"
    assert by_code["event-0505"]["group"] == "街面秩序 street order"
    # Components and events share codes: the kind keeps the service codes apart.
    assert by_code["event-0101"]["service_name"] != manhole["service_name"]
    # Grouped: the members of a group are next to each other.
    runs = [(s["service_code"].split("-")[0], s["group"]) for s in listed]
    runs = [g for i, g in enumerate(runs) if i == 0 or runs[i - 1] != g]
    assert len(runs) == len(set(runs)) == len({(c.kind, c.major) for c in PACK.classes.values()})


def test_service_definition_has_no_attributes() -> None:
    cls = PACK.classes[("component", "0101")]
    assert service_definition(cls) == {"service_code": "component-0101", "attributes": []}


def test_jurisdiction_is_the_district_code() -> None:
    check_jurisdiction(PACK, None)
    check_jurisdiction(PACK, PACK.city.district.code)
    with pytest.raises(Open311Error) as refused:
        check_jurisdiction(PACK, "city.example.org")
    assert refused.value.status == 404 and "jurisdiction_id" in refused.value.description


# --- service requests -----------------------------------------------------------------------


def test_a_case_becomes_a_service_request_without_personal_data() -> None:
    view = request_view(record(CASE), PACK)
    assert tuple(view) == REQUEST_FIELDS
    assert view["service_request_id"] == "c-1"
    assert view["status"] == "open"
    assert view["service_code"] == "event-0102"
    assert view["service_name"] == "暴露垃圾 exposed garbage"
    assert view["agency_responsible"] == PACK.departments["SANITATION"].name
    assert view["requested_datetime"] == "2026-03-02T10:00:00+08:00"  # W3C, city time
    assert view["updated_datetime"] == "2026-03-02T10:30:00+08:00"
    assert view["expected_datetime"] == "2026-03-02T14:00:00+08:00"
    assert (view["lat"], view["long"]) == (39.9205, 116.4035)
    assert view["address"] == "东四北大街 12号"
    assert "S0102-20260302-0001" in view["status_notes"]
    text = json.dumps(view, ensure_ascii=False)
    assert "13900000000" not in text and "李女士" not in text


def test_notes_say_why_a_request_closed() -> None:
    voided = CASE | {
        "state": "voided",
        "timeline": [_entry("voided", 2, "nothing found on site")],
    }
    assert request_view(record(voided), PACK)["status_notes"] == "voided: nothing found on site"
    merged = record(CASE | {"state": "merged", "merged_into": "c-0"})
    assert request_view(merged, PACK)["status"] == "closed"
    assert request_view(merged, PACK)["status_notes"] == "a duplicate of request c-0"
    # Before dispatch the class's owner is the agency responsible; no deadline yet.
    reported = {k: v for k, v in CASE.items() if k not in ("department", "deadline")}
    view = request_view(record(reported | {"state": "reported"}), PACK)
    assert view["agency_responsible"] == PACK.departments["SANITATION"].name
    assert view["expected_datetime"] is None


def test_posted_answers_the_request_id() -> None:
    assert posted({"case_id": "c-9", "state": "reported"})["service_request_id"] == "c-9"
    assert (
        "c-0"
        in posted({"case_id": "c-9", "state": "merged", "merged_into": "c-0"})["service_notice"]
    )


# --- POST requests: the form --------------------------------------------------------------


def test_a_form_becomes_a_citizen_website_report() -> None:
    report = to_report(FORM, PACK)
    assert report.channel is Channel.website
    assert (report.kind, report.class_code) == ("event", "0102")
    assert report.point is not None and (report.point.lon, report.point.lat) == (116.4035, 39.9205)
    assert report.address == "东四北大街 12号"
    assert report.reporter.name == "Li Na" and report.reporter.phone == "13900000000"
    assert "li@example.org" not in report.model_dump_json()  # email is not kept


def test_a_form_without_description_takes_the_service_name() -> None:
    report = to_report({k: v for k, v in FORM.items() if k != "description"}, PACK)
    assert report.description == "暴露垃圾 exposed garbage"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"service_code": None}, "service_code"),
        ({"service_code": "event-9999"}, "service_code"),
        ({"service_code": "0102"}, "service_code"),
        ({"lat": None}, "lat"),
        ({"long": None}, "long"),
        ({"lat": None, "long": None}, "lat"),  # address_string alone is not geocoded
        ({"lat": "north"}, "lat"),
        ({"long": "200"}, "long"),
        ({"lat": "nan"}, "lat"),
        ({"description": "x" * 2001}, "description"),
        ({"phone": "1" * 40}, "phone"),
        ({"first_name": "x" * 120}, "first_name"),
        ({"media_url": "https://example.org/cat.jpg"}, "media_url"),
    ],
)
def test_a_bad_form_is_refused_naming_the_field(change: dict[str, str | None], field: str) -> None:
    form = {k: v for k, v in (FORM | change).items() if v is not None}
    with pytest.raises(Open311Error) as refused:
        to_report(form, PACK)
    assert refused.value.status == 400
    assert refused.value.description.startswith(f"{field}: ")


def test_media_url_names_an_uploaded_file() -> None:
    assert media_id("http://127.0.0.1:8000/media/abc123") == "abc123"
    report = to_report(FORM | {"media_url": "http://intake/media/" + "ab" * 12}, PACK)
    assert report.media == ["ab" * 12]


def test_xml_input_is_parsed_safely() -> None:
    body = (
        b"<?xml version='1.0'?><request><service_code>event-0102</service_code>"
        b"<lat>39.9205</lat><long>116.4035</long><bogus>1</bogus></request>"
    )
    assert parse_xml_form(body) == {
        "service_code": "event-0102",
        "lat": "39.9205",
        "long": "116.4035",
    }
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><request><description>&b;</description>'
        b"</request>"
    )
    external = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<request><description>&x;</description></request>"
    )
    for evil in (laughs, external, b"<request><unclosed></request>", b"<other/>"):
        with pytest.raises(Open311Error) as refused:
            parse_xml_form(evil)
        assert refused.value.status == 400


# --- GET requests: filters -----------------------------------------------------------------


def test_ids_override_every_other_filter() -> None:
    f = filters(PACK, NOW, "a, b,,c", "event-0102", status="open")
    assert f == CaseQuery(ids=("a", "b", "c"))


def test_filters_by_code_status_and_dates() -> None:
    f = filters(
        PACK,
        NOW,
        service_code="event-0102,component-0101",
        start_date="2026-03-01T00:00:00+08:00",
        end_date="2026-03-02T00:00:00Z",
        status="closed",
    )
    assert f.classes == (("event", "0102"), ("component", "0101"))
    assert set(f.states) == {
        *("closed", "evaluated", "voided", "merged", "answered", "self_handled")
    }
    assert f.reported_since == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)
    assert f.reported_until == datetime(2026, 3, 2, tzinfo=UTC)


def test_without_dates_the_last_90_days() -> None:
    f = filters(PACK, NOW)
    assert (f.reported_since, f.reported_until) == (NOW - timedelta(days=90), None)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"status": "pending"}, "status"),
        ({"service_code": "event-4242"}, "service_code"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"end_date": "2026-13-01"}, "end_date"),
        ({"start_date": "2026-03-02T00:00:00Z", "end_date": "2026-03-01T00:00:00Z"}, "end_date"),
    ],
)
def test_bad_filters_name_the_field(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(Open311Error) as refused:
        filters(PACK, NOW, **kwargs)
    assert refused.value.status == 400
    assert refused.value.description.startswith(f"{field}: ")


# --- rendering: the spec's names -----------------------------------------------------------


def _children(element: ET.Element) -> list[str]:
    return [c.tag for c in element]


def test_services_xml_uses_the_spec_names() -> None:
    root = ET.fromstring(render("xml", "services", services(PACK)))
    assert root.tag == "services"
    assert {c.tag for c in root} == {"service"}
    first = root[0]
    assert _children(first) == list(SERVICE_FIELDS)
    assert first.findtext("metadata") == "false"
    assert first.findtext("type") == "realtime"


def test_requests_xml_uses_the_spec_names_and_escapes_text() -> None:
    hostile = CASE | {"description": "<b>&amp; ]]> <!ENTITY x 'y'>"}
    view = request_view(record(hostile), PACK)
    root = ET.fromstring(render("xml", "service_requests", [view]))
    assert root.tag == "service_requests"
    [request] = root
    assert request.tag == "request"
    assert _children(request) == list(REQUEST_FIELDS)
    assert request.findtext("description") == "<b>&amp; ]]> <!ENTITY x 'y'>"
    assert request.findtext("status") == "open"
    assert request.findtext("lat") == "39.9205"
    assert request.findtext("address_id") == ""  # empty, not absent


def test_definition_discovery_and_errors_xml() -> None:
    cls = PACK.classes[("component", "0101")]
    definition = ET.fromstring(render("xml", "service_definition", service_definition(cls)))
    assert _children(definition) == ["service_code", "attributes"]
    found = ET.fromstring(render("xml", "discovery", discovery(PACK, "http://x/open311/v2")))
    assert _children(found) == ["changeset", "contact", "key_service", "endpoints"]
    endpoint = found.find("endpoints/endpoint")
    assert endpoint is not None
    assert [f.text for f in endpoint.findall("formats/format")] == [
        "application/json",
        "text/xml",
    ]
    error = errors(Open311Error(403, "api_key: unknown or revoked"))
    assert json.loads(render("json", "errors", error)) == [
        {"code": 403, "description": "api_key: unknown or revoked"}
    ]
    root = ET.fromstring(render("xml", "errors", error))
    assert root.tag == "errors" and _children(root) == ["error"]
    assert root.findtext("error/code") == "403"
    assert root.findtext("error/description") == "api_key: unknown or revoked"
