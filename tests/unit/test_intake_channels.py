"""Intake's channels, filing, duplicates, views and media: pure decisions, no servers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from gridloop.access import Principal
from gridloop.access import Role as Access
from gridloop.cases import CaseView
from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.contacts import contact_id
from gridloop.errors import STATUS
from gridloop.lifecycle import InvalidTransition, State
from gridloop.nearby import metres
from gridloop.refusal import Refused
from schemas.events import (
    CaseEvent,
    CaseFiled,
    CaseMerged,
    CaseReported,
    CaseSplit,
    CaseVoided,
    Point,
    Role,
)
from services.intake.commands import File, Merge, Split, Verify, Void
from services.intake.core import (
    decide_file,
    decide_merge,
    decide_split,
    decide_verification,
    decide_void,
)
from services.intake.duplicates import Nearby, find_duplicate, search_box
from services.intake.media import LIMITS, check, sniff
from services.intake.reporting import case_number, decide_report, local_day, to_file
from services.intake.requests import ReportIn, VoidIn, report_of
from services.intake.views import (
    follow_token,
    may_follow,
    media_case,
    public_view,
    staff_view,
)

NOW = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)
CASE = "case-1"
COVER = "1101010101000001"  # water manhole cover in grid …001001 at (116.4005, 39.9204)
SUPERVISOR = Principal(Access.supervisor, "SUP-0001")
HOTLINE = Principal(Access.hotline, "op-3")
CITIZEN = Principal(Access.public, "anonymous")
ACCOUNT = Principal(Access.public, "user-77")
CENTRE = Principal(Access.supervision_centre, "centre-1")


@pytest.fixture(scope="module")
def pack() -> CityPack:
    return load_city_pack(DEMO_CITY_PACK)


def report(**fields: Any) -> ReportIn:
    base: dict[str, Any] = {
        "channel": "website",
        "kind": "event",
        "class_code": "0102",
        "point": {"lon": 116.4035, "lat": 39.9205},
        "description": "rubbish",
    }
    return ReportIn.model_validate(base | fields)


def _decide(
    r: ReportIn,
    pack: CityPack,
    who: Principal,
    nearby: Sequence[Nearby] = (),
    number: str | None = None,
) -> list[CaseEvent]:
    """`who`'s report `r`, as the HTTP edge makes it a command, decided now."""
    return decide_report(pack, report_of(r, CASE, who), NOW, nearby, number)


def refused(excinfo: pytest.ExceptionInfo[Refused], status: int, loc: tuple[str, ...]) -> str:
    assert STATUS[excinfo.value.why] == status
    assert excinfo.value.loc == loc
    return excinfo.value.code


# --- channels and roles ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "who", "allowed"),
    [
        ("website", CITIZEN, True),
        ("website", SUPERVISOR, True),
        ("hotline", CITIZEN, False),
        ("hotline", SUPERVISOR, False),
        ("hotline", HOTLINE, True),
        ("supervisor", CITIZEN, False),
        ("supervisor", HOTLINE, False),
        ("supervisor", Principal(Access.department, "WATER"), False),
        ("supervisor", SUPERVISOR, True),
        # A grid person reports what a visit found (走访) from the same handheld.
        ("supervisor", Principal(Access.grid_staff, "GM-0001"), True),
        ("hotline", Principal(Access.grid_staff, "GM-0001"), False),
    ],
)
def test_each_channel_admits_its_roles(
    pack: CityPack, channel: str, who: Principal, allowed: bool
) -> None:
    r = report(channel=channel, reporter={"phone": "13900000000"})
    if allowed:
        assert _decide(r, pack, who)
    else:
        with pytest.raises(Refused) as info:
            _decide(r, pack, who)
        if who == CITIZEN:  # no credential at all: ask for one
            assert refused(info, 401, ("header", "Authorization")) == "unauthenticated"
        else:
            assert refused(info, 403, ("body", "channel")) == "forbidden"


def test_a_grid_person_reports_as_grid_staff(pack: CityPack) -> None:
    who = Principal(Access.grid_staff, "GM-0001")
    reported = _decide(report(channel="supervisor"), pack, who)[0]
    assert (reported.actor.role, reported.actor.id) == (Role.grid_staff, "GM-0001")


def test_a_citizen_account_reports_as_itself(pack: CityPack) -> None:
    reported = _decide(report(), pack, ACCOUNT)[0]
    assert reported.actor.role is Role.citizen
    assert reported.actor.id == "user-77"


def test_a_component_report_takes_point_grid_and_class_from_the_inventory(pack: CityPack) -> None:
    r = report(channel="supervisor", kind=None, class_code=None, point=None, component_id=COVER)
    reported, filed = _decide(r, pack, SUPERVISOR, number="n")
    assert isinstance(reported, CaseReported)
    assert isinstance(filed, CaseFiled)
    assert reported.point == Point(lon=116.4005, lat=39.9204)
    assert (reported.kind, reported.class_code) == ("component", "0101")
    assert reported.grid_code == filed.grid_code == "110101001001001"
    assert reported.component_id == filed.component_id == COVER


@pytest.mark.parametrize(
    ("fields", "loc", "kind"),
    [
        ({"component_id": "1101010101999999"}, ("body", "component_id"), "unknown_component"),
        ({"component_id": "1101010305000002"}, ("body", "component_id"), "removed_component"),
        ({"component_id": COVER, "kind": "event"}, ("body", "kind"), "kind_mismatch"),
        (
            {"component_id": COVER, "kind": "component", "class_code": "0118"},
            ("body", "class_code"),
            "class_mismatch",
        ),
        ({"kind": None}, ("body", "kind"), "missing"),
        ({"class_code": None}, ("body", "class_code"), "missing"),
        ({"point": None}, ("body", "point"), "missing"),
        ({"grid_code": "110101001001001"}, ("body", "grid_code"), "grid_mismatch"),
    ],
)
def test_bad_reports_name_the_field(
    pack: CityPack, fields: dict[str, Any], loc: tuple[str, ...], kind: str
) -> None:
    base = {"kind": None, "class_code": None} if "component_id" in fields else {}
    with pytest.raises(Refused) as info:
        _decide(report(**(base | fields)), pack, CITIZEN)
    assert refused(info, 422, loc) == kind


def test_staff_grade_a_reports_urgency(pack: CityPack) -> None:
    [urgent, *_] = _decide(report(channel="supervisor", urgency="urgent"), pack, SUPERVISOR)
    assert isinstance(urgent, CaseReported) and urgent.urgency == "urgent"
    hotline = report(channel="hotline", reporter={"phone": "1"}, urgency="normal")
    [graded, *_] = _decide(hotline, pack, HOTLINE)
    assert isinstance(graded, CaseReported) and graded.urgency == "normal"
    [ungraded, *_] = _decide(report(channel="supervisor"), pack, SUPERVISOR)
    assert isinstance(ungraded, CaseReported) and ungraded.urgency is None


def test_an_urgency_the_city_does_not_name_is_refused(pack: CityPack) -> None:
    with pytest.raises(Refused) as info:
        _decide(report(channel="supervisor", urgency="panic"), pack, SUPERVISOR)
    assert refused(info, 422, ("body", "urgency")) == "unknown_urgency"
    assert "normal, urgent" in info.value.reason


def test_citizens_do_not_grade_urgency(pack: CityPack) -> None:
    with pytest.raises(Refused) as info:
        _decide(report(urgency="urgent"), pack, CITIZEN)
    assert refused(info, 422, ("body", "urgency")) == "urgency_not_allowed"


def test_a_hotline_report_needs_the_caller_s_phone(pack: CityPack) -> None:
    with pytest.raises(Refused) as info:
        _decide(report(channel="hotline"), pack, HOTLINE)
    refused(info, 422, ("body", "reporter", "phone"))


def test_a_hotline_report_located_by_address_and_grid(pack: CityPack) -> None:
    r = report(
        channel="hotline",
        point=None,
        grid_code="110101002001002",
        address="景山东街 12 号门口",
        reporter={"name": "李女士", "phone": "13900000000"},
    )
    reported = _decide(r, pack, HOTLINE)[0]
    assert isinstance(reported, CaseReported)
    assert reported.grid_code == "110101002001002"
    assert reported.address == "景山东街 12 号门口"
    assert (
        pack.locate(reported.point.lon, reported.point.lat) == pack.grid_by_code["110101002001002"]
    )  # the grid's inner point stands in
    # The caller's phone is kept in the contact store; the event names it only.
    assert reported.reporter.phone is None
    assert reported.reporter.contact == contact_id(reported.case_id)
    assert reported.verifier == "SUP-0003"


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"point": None}, ("body", "point")),
        ({"point": None, "grid_code": "110101002001002"}, ("body", "address")),
        ({"point": None, "grid_code": "110101009001002", "address": "x"}, ("body", "grid_code")),
    ],
)
def test_a_hotline_report_without_a_location(
    pack: CityPack, fields: dict[str, Any], loc: tuple[str, ...]
) -> None:
    r = report(channel="hotline", reporter={"phone": "1"}, **fields)
    with pytest.raises(Refused) as info:
        _decide(r, pack, HOTLINE)
    refused(info, 422, loc)


def test_supervisor_reports_wait_when_the_pack_files_by_hand(pack: CityPack) -> None:
    manual = CityPack(
        pack.city.model_copy(
            update={"intake": pack.city.intake.model_copy(update={"auto_file": False})}
        ),
        [(g, pack.polygon(g.code)) for g in pack.grids],
        list(pack.components.values()),
    )
    events = _decide(report(channel="supervisor"), manual, SUPERVISOR)
    assert [type(e) for e in events] == [CaseReported]
    assert to_file(events) is None


# --- duplicates -----------------------------------------------------------------------------


def near(case_id: str, dlon_m: float, ago: timedelta = timedelta(hours=1)) -> Nearby:
    # 1 m of longitude at 39.92° N is about 1 / 85,360 degrees.
    return Nearby(case_id, 116.4035 + dlon_m / 85_360, 39.9205, NOW - ago)


def test_a_report_near_an_open_case_of_its_class_is_merged(pack: CityPack) -> None:
    nearby = [near("far", 45), near("close", 10), near("old", 5, timedelta(days=4))]
    events = _decide(report(), pack, CITIZEN, nearby)
    assert [type(e) for e in events] == [CaseReported, CaseMerged]
    merged = events[1]
    assert isinstance(merged, CaseMerged)
    assert merged.into_case_id == "close"
    assert merged.actor.role is Role.system
    assert "10 m" in (merged.reason or "")


def test_the_radius_is_per_class(pack: CityPack) -> None:
    """Exposed garbage (0102) merges within 30 m, not 45 m; the default is 50 m."""
    assert len(_decide(report(), pack, CITIZEN, [near("a", 45)])) == 1
    parking = report(class_code="0505")
    assert len(_decide(parking, pack, CITIZEN, [near("a", 45)])) == 2


def test_find_duplicate_window_and_ties() -> None:
    p = Point(lon=116.4035, lat=39.9205)
    window = timedelta(days=1)
    assert find_duplicate([near("a", 1, timedelta(days=2))], CASE, p, NOW, 50, window) is None
    assert find_duplicate([near(CASE, 0)], CASE, p, NOW, 50, window) is None  # itself
    older, newer = near("b", 5, timedelta(hours=5)), near("a", 5, timedelta(hours=1))
    found = find_duplicate([newer, older], CASE, p, NOW, 50, window)
    assert found is not None
    assert found[0].case_id == "b"  # same distance: the earlier report


def test_metres_and_search_box() -> None:
    assert metres(116.4, 39.92, 116.4, 39.92) == 0
    assert 110_000 < metres(116.4, 39.0, 116.4, 40.0) < 112_000
    p = Point(lon=116.4035, lat=39.9205)
    west, south, east, north = search_box(p, 50)
    assert metres(p.lon, p.lat, east, p.lat) == pytest.approx(50, rel=1e-3)
    assert metres(p.lon, p.lat, p.lon, north) == pytest.approx(50, rel=1e-3)
    assert west < p.lon < east and south < p.lat < north


# --- filing, voiding, merging by hand ----------------------------------------------------------


def view(state: State, version: int = 2, case_id: str = CASE) -> CaseView:
    return CaseView(
        case_id=case_id,
        state=state,
        version=version,
        kind="event",
        class_code="0102",
        grid_code="110101001002002",
        component_id=None,
    )


def test_case_numbers_are_class_date_and_sequence(pack: CityPack) -> None:
    assert case_number("component", "0101", date(2026, 3, 2), 7) == "B0101-20260302-0007"
    assert case_number("event", "01010", date(2026, 3, 2), 12345) == "S01010-20260302-12345"
    assert local_day(pack, NOW) == date(2026, 3, 2)  # 17:30 UTC is the next day in Beijing


def test_the_centre_files_a_verified_case_with_its_number() -> None:
    (filed,) = decide_file(view(State.verified), File(CASE, CENTRE, note="clear"), "S0102-1")
    assert isinstance(filed, CaseFiled)
    assert filed.version == 3
    assert filed.case_number == "S0102-1"
    assert filed.actor.role is Role.supervision_centre
    assert filed.actor.id == "centre-1"
    assert filed.reason == "clear"
    with pytest.raises(InvalidTransition):
        decide_file(view(State.filed), File(CASE, CENTRE), None)


def test_the_centre_files_in_a_corrected_class_of_the_catalogue_only(pack: CityPack) -> None:
    corrected = File(CASE, CENTRE, kind="event", class_code="0401")
    (filed,) = decide_file(view(State.reported), corrected, None, pack)
    assert isinstance(filed, CaseFiled)
    assert (filed.kind, filed.class_code) == ("event", "0401")
    unknown = File(CASE, CENTRE, kind="event", class_code="0999")
    with pytest.raises(Refused) as refused:
        decide_file(view(State.reported), unknown, None, pack)
    assert refused.value.loc == ("body", "class_code")
    half = File(CASE, CENTRE, class_code="0401")  # no kind: which catalogue?
    with pytest.raises(Refused) as refused:
        decide_file(view(State.reported), half, None, pack)
    assert refused.value.loc == ("body", "kind")


def test_a_confirmation_waits_for_the_centre_when_filing_is_by_hand() -> None:
    supervisor = Principal(Access.supervisor, "SUP-0002")
    answer = Verify(CASE, supervisor, confirmed=True, media=("0123456789abcdef01234567",))
    events = decide_verification(view(State.reported, 1), answer, auto_file=False)
    assert [e.ce_type for e in events] == ["gridloop.case.verified"]
    assert events[0].model_dump()["media"] == ["0123456789abcdef01234567"]


def test_a_verification_by_someone_else_s_name_is_refused() -> None:
    answer = Verify(CASE, SUPERVISOR, confirmed=True, supervisor_id="SUP-9")
    with pytest.raises(Refused) as info:
        decide_verification(view(State.reported, 1), answer)
    refused(info, 403, ("body", "supervisor_id"))


def test_void_needs_a_reason_and_records_it() -> None:
    (voided,) = decide_void(view(State.reported, 1), Void(CASE, CENTRE, "not a city matter"))
    assert isinstance(voided, CaseVoided)
    assert (voided.reason, voided.version, voided.actor.id) == ("not a city matter", 2, "centre-1")
    with pytest.raises(ValueError):
        VoidIn.model_validate({"reason": ""})


def test_merge_by_hand() -> None:
    into = view(State.dispatched, 5, "target")
    (merged,) = decide_merge(view(State.reported, 1), into, Merge(CASE, CENTRE, "target"))
    assert isinstance(merged, CaseMerged)
    assert merged.into_case_id == "target"
    assert merged.reason
    with pytest.raises(Refused) as info:
        decide_merge(view(State.reported, 1), view(State.closed, 9, "target"), Merge(
            CASE, CENTRE, "target"))  # fmt: skip
    refused(info, 409, ("body", "into_case_id"))
    with pytest.raises(Refused) as info:
        decide_merge(view(State.reported, 1), view(State.reported, 1), Merge(
            CASE, CENTRE, CASE))  # fmt: skip
    refused(info, 422, ("body", "into_case_id"))
    with pytest.raises(InvalidTransition):
        decide_merge(view(State.filed, 3), into, Merge(CASE, CENTRE, "target"))


def test_split_returns_a_merged_report_to_reported() -> None:
    merged = replace(view(State.merged, 2), merged_into="target")
    (split,) = decide_split(merged, Split(CASE, CENTRE, "other bin"))
    assert isinstance(split, CaseSplit)
    assert (split.version, split.from_case_id, split.reason) == (3, "target", "other bin")
    with pytest.raises(InvalidTransition):
        decide_split(view(State.reported, 1), Split(CASE, CENTRE, "x"))


# --- views: personal data and the reporter's view ------------------------------------------------

DOC: dict[str, Any] = {
    "_id": CASE,
    "state": "dispatched",
    "version": 4,
    "kind": "event",
    "class_code": "0102",
    "description": "rubbish",
    "reporter": {"id": None, "name": "李女士", "phone": "13900000000"},
    "timeline": [
        {"event_id": "e-1", "type": "reported", "version": 1, "at": NOW, "reason": None,
         "data": {"reporter": {"name": "李女士", "phone": "13900000000"}},
         "actor": {"role": "citizen", "id": "website"}},
        {"event_id": "e-2", "type": "voided", "version": 2, "at": NOW, "reason": "spam",
         "data": {}, "actor": {"role": "supervision_centre", "id": "c-1"}},
        {"event_id": "e-3", "type": "gridloop.sla.breach", "version": 2, "at": NOW,
         "data": {"department": "X"}},
    ],
}  # fmt: skip
RECORD = CaseRecord.model_validate(DOC)  # as the case reader returns the document


@pytest.mark.parametrize(
    ("role", "sees"),
    [
        (Access.hotline, True),
        (Access.supervision_centre, True),
        (Access.admin, True),
        (Access.supervisor, False),
        (Access.command_centre, False),
        (Access.department, False),
    ],
)
def test_names_and_phones_only_for_roles_that_may_see_them(role: Access, sees: bool) -> None:
    shown = str(staff_view(RECORD, Principal(role, "x"), 2))
    assert ("13900000000" in shown) is sees
    assert ("李女士" in shown) is sees
    assert staff_view(RECORD, Principal(role, "x"), 2)["duplicates"] == 2


def test_the_public_view_shows_status_and_public_notes_only() -> None:
    shown = public_view(RECORD, "暴露垃圾", None)
    assert shown["status"] == "open"
    assert shown["class_name"] == "暴露垃圾"
    assert [e["type"] for e in shown["timeline"]] == ["case.reported", "case.voided"]
    assert shown["timeline"][1]["note"] == "spam"
    text = str(shown)
    for secret in ("13900000000", "李女士", "c-1", "website", "department"):
        assert secret not in text
    target = {"_id": "t", "state": "closed", "version": 9, "case_number": "S0102-20260302-0001"}
    duplicate = RECORD.model_copy(update={"state": State.merged})
    merged = public_view(duplicate, "x", CaseRecord.model_validate(target))
    assert merged["status"] == "closed"
    assert merged["merged_into"]["case_number"] == "S0102-20260302-0001"


def test_follow_tokens() -> None:
    token = follow_token(b"k" * 32, CASE)
    assert token == follow_token(b"k" * 32, CASE)
    assert may_follow(b"k" * 32, CASE, token)
    assert not may_follow(b"k" * 32, "case-2", token)
    assert not may_follow(b"x" * 32, CASE, token)
    assert not may_follow(b"k" * 32, CASE, None)


# --- media ----------------------------------------------------------------------------------

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 100
AMR = b"#!AMR\n" + b"\x00" * 100


@pytest.mark.parametrize(
    ("head", "content_type"),
    [
        (JPEG, "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, "image/png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (AMR, "audio/amr"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"OggS\x00\x02" + b"\x00" * 10, "audio/ogg"),
        (b"ID3\x04\x00" + b"\x00" * 10, "audio/mpeg"),
        (b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 4, "audio/mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81" + b"\x00" * 8, "audio/webm"),  # MediaRecorder's
    ],
)
def test_media_types_are_read_from_the_bytes(head: bytes, content_type: str) -> None:
    found = sniff(head[:16])
    assert found is not None
    assert found.content_type == content_type


@pytest.mark.parametrize(
    ("data", "status", "kind"),
    [
        (b"", 422, "empty_file"),
        (b"%PDF-1.7 not a photo", 415, "unsupported_media_type"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", 415, "unsupported_media_type"),
        (JPEG + b"\x00" * LIMITS["photo"], 413, "too_large"),
        (AMR + b"\x00" * LIMITS["voice"], 413, "too_large"),
    ],
)
def test_media_limits(data: bytes, status: int, kind: str) -> None:
    with pytest.raises(Refused) as info:
        check(data)
    assert (STATUS[info.value.why], info.value.code) == (status, kind)
    assert info.value.loc == ("body", "file")


def test_media_at_the_limit_is_taken() -> None:
    assert check(JPEG + b"\x00" * (LIMITS["photo"] - len(JPEG))).kind == "photo"


def test_media_are_read_as_their_case_is() -> None:
    held = CaseRecord.model_validate(
        {"_id": "C-1", "state": "dispatched", "version": 3, "department": "WATER"}
    )
    assisted = held.model_copy(update={"case_id": "C-2", "assisting": ["ROADS"]})
    water, roads = Principal(Access.department, "WATER"), Principal(Access.department, "ROADS")
    parks = Principal(Access.department, "PARKS")
    linked = ["C-1", "C-2"]
    assert media_case(water, None, [held, assisted], linked) == (True, "C-1")
    assert media_case(roads, None, [held, assisted], linked) == (True, "C-2")  # assisting
    assert media_case(parks, None, [held, assisted], linked) == (False, None)
    assert media_case(parks, parks, [], []) == (True, None)  # its own upload
    # Uploaded with the department's credential, read by a person of it signed in.
    signed_in = Principal(Access.department, "PARKS", person="zhao.min")
    assert media_case(signed_in, parks, [], []) == (True, None)
    # Staff but departments read every case, so every upload, linked or not.
    centre = Principal(Access.supervision_centre, "centre-1")
    assert media_case(centre, None, [], linked) == (True, "C-1")
    assert media_case(centre, None, [], []) == (True, None)
