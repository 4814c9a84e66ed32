"""Each limit of `schemas/limits.py` on the request models: taken at the edge, refused one
past it with the field named (the `loc` FastAPI puts after "body" in a 422); text normalised
to NFC, control characters and lone surrogates refused, blank text refused or dropped."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from schemas import limits
from services.dispatch.api import DecisionIn, DispatchIn, ExtensionIn, HandledIn, ReturnIn
from services.intake.open311 import Open311Error, to_report
from services.intake.requests import MergeIn, ReportIn, VerificationIn, VoidIn
from services.notify.admin import ReplayIn, WebhookIn

REPORT: dict[str, Any] = {
    "channel": "hotline",
    "kind": "event",
    "class_code": "0102",
    "point": {"lon": 116.4, "lat": 39.9},
    "description": "暴露垃圾",
    "reporter": {"name": "王芳", "phone": "13800000000"},
}
HANDLER: dict[str, Any] = {"handler_id": "crew-1", "reason": "not ours"}
ORDER: dict[str, Any] = {"dispatcher": "cc-1", "department": "WATER", "reason": "by hand"}


def taken(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    return model.model_validate(data)


def refused(model: type[BaseModel], data: dict[str, Any]) -> tuple[str | int, ...]:
    """The location of the one error in `data`."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return tuple(errors[0]["loc"])


def report(**fields: Any) -> dict[str, Any]:
    return REPORT | fields


# --- lengths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "limit"),
    [("description", limits.DESCRIPTION_MAX), ("address", limits.ADDRESS_MAX)],
)
def test_report_text_lengths(field: str, limit: int) -> None:
    assert getattr(taken(ReportIn, report(**{field: "路" * limit})), field) == "路" * limit
    assert refused(ReportIn, report(**{field: "路" * (limit + 1)})) == (field,)


@pytest.mark.parametrize(
    ("field", "limit"), [("name", limits.NAME_MAX), ("id", limits.PERSON_ID_MAX)]
)
def test_reporter_lengths(field: str, limit: int) -> None:
    taken(ReportIn, report(reporter={field: "a" * limit}))
    assert refused(ReportIn, report(reporter={field: "a" * (limit + 1)})) == ("reporter", field)


def test_phone_numbers() -> None:
    for phone in ("13800000000", "+86 (10) 6512-3456", "1" * limits.PHONE_MAX):
        taken(ReportIn, report(reporter={"phone": phone}))
    for phone in ("1" * (limits.PHONE_MAX + 1), "call me", "+", "138\n0000"):
        assert refused(ReportIn, report(reporter={"phone": phone})) == ("reporter", "phone")


def test_reasons_and_notes() -> None:
    taken(VoidIn, {"reason": "x" * limits.REASON_MAX})
    assert refused(VoidIn, {"reason": "x" * (limits.REASON_MAX + 1)}) == ("reason",)
    taken(VerificationIn, {"confirmed": True, "note": "x" * limits.REASON_MAX})
    assert refused(VerificationIn, {"confirmed": True, "note": "x" * 2001}) == ("note",)
    taken(ReturnIn, HANDLER | {"handler_id": "h" * limits.HANDLER_ID_MAX})
    assert refused(ReturnIn, HANDLER | {"handler_id": "h" * 33}) == ("handler_id",)
    taken(DispatchIn, ORDER | {"dispatcher": "d" * limits.PERSON_ID_MAX})
    assert refused(DispatchIn, ORDER | {"dispatcher": "d" * 65}) == ("dispatcher",)


# --- lists ----------------------------------------------------------------------------------


def test_list_lengths() -> None:
    media = ["0123456789abcdef01234567"]
    taken(ReportIn, report(media=media * limits.MEDIA_MAX))
    assert refused(ReportIn, report(media=media * (limits.MEDIA_MAX + 1))) == ("media",)
    assisting = [f"DEPT-{i}" for i in range(limits.ASSISTING_MAX + 1)]
    taken(DispatchIn, ORDER | {"assisting": assisting[:-1]})
    assert refused(DispatchIn, ORDER | {"assisting": assisting}) == ("assisting",)
    photos = ["https://photos.example/1.jpg"]
    taken(HandledIn, {"handler_id": "h", "photos": photos * limits.PHOTOS_MAX})
    assert refused(HandledIn, {"handler_id": "h", "photos": photos * 21}) == ("photos",)


# --- codes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("grid_code", ["1" * 14, "1" * 15], ["1" * 13, "1" * 16, "١" * 14, "11010100100200a"]),
        ("component_id", ["1" * 16, "1" * 17], ["1" * 15, "1" * 18, "１" * 16]),
        ("class_code", ["0102", "01021"], ["012", "010210", "０１０２"]),
    ],
)
def test_codes_are_ascii_digits_of_their_length(
    field: str, good: list[str], bad: list[str]
) -> None:
    for code in good:
        taken(ReportIn, report(**{field: code}))
    for code in bad:
        assert refused(ReportIn, report(**{field: code})) == (field,)


def test_case_and_department_codes() -> None:
    taken(MergeIn, {"into_case_id": "C" * limits.CASE_ID_MAX})
    for bad in ("C" * 65, "C 1", "C/1", ""):
        assert refused(MergeIn, {"into_case_id": bad}) == ("into_case_id",)
    for bad in ("water", "W", "WATER\n", "D" * 33):
        assert refused(DispatchIn, ORDER | {"department": bad}) == ("department",)
    assert refused(ReplayIn, {"case_id": "C 1"}) == ("case_id",)
    assert refused(ReplayIn, {"department": "water"}) == ("department",)


# --- coordinates and times ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("axis", "edge"), [("lon", 180.0), ("lon", -180.0), ("lat", 90.0), ("lat", -90.0)]
)
def test_coordinates_within_wgs84(axis: str, edge: float) -> None:
    point = {"lon": 116.4, "lat": 39.9}
    taken(ReportIn, report(point=point | {axis: edge}))
    past = edge + (1e-7 if edge > 0 else -1e-7)
    assert refused(ReportIn, report(point=point | {axis: past})) == ("point", axis)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_coordinates_are_finite(value: float) -> None:
    assert refused(ReportIn, report(point={"lon": value, "lat": 39.9})) == ("point", "lon")


def test_deadlines_given_by_hand_have_a_zone_and_a_sane_year() -> None:
    ask = HANDLER | {"deadline": "2100-12-31T23:59:59+08:00"}
    taken(ExtensionIn, ask)
    for bad in ("2101-01-01T00:00:00+08:00", "1999-12-31T00:00:00Z", "2026-03-02T09:00:00"):
        assert refused(ExtensionIn, ask | {"deadline": bad}) == ("deadline",)
    decision = {"dispatcher": "cc-1", "deadline": "9999-12-31T23:59:59+00:00"}
    assert refused(DecisionIn, decision) == ("deadline",)


# --- text: Unicode and control characters -----------------------------------------------------


def test_text_is_normalised_to_nfc_and_stripped() -> None:
    decomposed = "cafe\u0301 "  # e + combining acute
    parsed = taken(ReportIn, report(description=decomposed))
    assert parsed.description == "caf\u00e9"  # type: ignore[attr-defined]
    # The length counts after normalisation: 2000 decomposed letters are 2000 letters.
    long = taken(ReportIn, report(description="e\u0301" * limits.DESCRIPTION_MAX))
    assert long.description == "\u00e9" * limits.DESCRIPTION_MAX  # type: ignore[attr-defined]


def test_free_text_keeps_line_breaks_and_tabs() -> None:
    parsed = taken(ReportIn, report(description="第一行\r\n第二行\tB"))
    assert parsed.description == "第一行\n第二行\tB"  # type: ignore[attr-defined]


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x85", "\r", "\ud800", "\udfff"])
def test_control_characters_and_lone_surrogates_are_refused(char: str) -> None:
    assert refused(ReportIn, report(description=f"a{char}b")) == ("description",)
    assert refused(VoidIn, {"reason": f"a{char}b"}) == ("reason",)
    assert refused(ReportIn, report(reporter={"name": f"a{char}b"})) == ("reporter", "name")


def test_names_and_ids_are_single_lines() -> None:
    assert refused(ReportIn, report(reporter={"name": "王\n芳"})) == ("reporter", "name")
    assert refused(ReturnIn, HANDLER | {"handler_id": "crew\t1"}) == ("handler_id",)
    assert refused(DispatchIn, ORDER | {"dispatcher": "cc\n1"}) == ("dispatcher",)


def test_blank_text_is_refused_when_required_and_dropped_when_optional() -> None:
    for blank in ("", " ", "\n\t ", "\u3000"):  # the last: an ideographic space
        assert refused(ReportIn, report(description=blank)) == ("description",)
        assert refused(VoidIn, {"reason": blank}) == ("reason",)
        assert refused(ReturnIn, HANDLER | {"handler_id": blank}) == ("handler_id",)
        verification = taken(VerificationIn, {"confirmed": True, "note": blank})
        assert verification.note is None  # type: ignore[attr-defined]
        assert taken(ReportIn, report(address=blank)).address is None  # type: ignore[attr-defined]


# --- webhook URLs ---------------------------------------------------------------------------------


def test_webhook_urls_must_parse() -> None:
    # The scheme and the address are notify's to judge (`url_refused`), after parsing.
    for url in ("https://water.example/hooks/gridloop", "ftp://water.example/", "https:///x"):
        taken(WebhookIn, {"url": url})
    label = "a" * 64
    bad = [
        "http://[::1",  # an unclosed IPv6 literal
        "http://water.example:99999/",  # a port out of range
        f"https://{label}.example/",  # a DNS label longer than 63
        "https://water.example/a b",
        "https://water.example/\x00",
        "h" * (limits.URL_MAX + 1),
    ]
    for url in bad:
        assert refused(WebhookIn, {"url": url}) == ("url",), url


# --- Open311: the same limits, refused in its shape -------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "a\x00b"),
        ("description", "d" * (limits.DESCRIPTION_MAX + 1)),
        ("address_string", "a" * (limits.ADDRESS_MAX + 1)),
        ("first_name", "王\n芳"),
        ("phone", "call me"),
        ("lat", "90.0000001"),
        ("long", "nan"),
    ],
)
def test_open311_requests_meet_the_same_limits(field: str, value: str) -> None:
    form = {"service_code": "event-0102", "lat": "39.9205", "long": "116.4025"}
    with pytest.raises(Open311Error) as caught:
        to_report(form | {field: value}, load_city_pack(DEMO_CITY_PACK))
    assert caught.value.status == 400
    assert caught.value.description.startswith(f"{field}: ")
