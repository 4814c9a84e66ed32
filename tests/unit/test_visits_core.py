"""Households and visits (走访), pure: the register's changes, a visit decided or refused,
what a finding becomes, and coverage on hand-built visit logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridloop.access import Principal, Role
from gridloop.citypack.households import Occupancy
from gridloop.refusal import Refused, Why
from services.grid.coverage import coverage, period_of
from services.grid.doors import (
    ChangeDoor,
    Household,
    RegisterDoor,
    decide_change,
    decide_register,
)
from services.grid.visiting import (
    REPORT_KIND,
    Finding,
    FindingType,
    LogVisit,
    ReportFinding,
    Visit,
    decide_report,
    decide_visit,
    reported,
)

G1, G2 = "110101001001001", "110101001001002"
TZ = "Asia/Shanghai"
NOW = datetime(2026, 12, 20, 4, 0, tzinfo=UTC)  # 12:00 in Beijing
ZHAO = Principal(Role.grid_staff, "GM-0001")  # works G1
QIAN = Principal(Role.grid_staff, "GM-0002")  # works G2
THEIRS = {"GM-0001": [G1], "GM-0002": [G2]}


def _door(hid: str, grid: str = G1, occupancy: Occupancy = Occupancy.owner_occupied) -> Household:
    return Household(hid, grid, "3号楼", hid[-3:], ((None, occupancy),))


REGISTER = [
    _door("hh_101"),
    _door("hh_102", occupancy=Occupancy.rented),
    _door("hh_103", occupancy=Occupancy.office),
    _door("hh_104", occupancy=Occupancy.vacant),
    _door("hh_201", grid=G2),
]


def _log(who: Principal = ZHAO, **overrides: Any) -> LogVisit:
    fields: dict[str, object] = {
        "visit_id": "v-1",
        "grid": G1,
        "who": who,
        "at": NOW - timedelta(hours=1),
        "households": ("hh_101", "hh_102"),
        "findings": (Finding(FindingType.need, "楼道灯坏了", "hh_101"),),
    }
    return LogVisit(**(fields | overrides))  # type: ignore[arg-type]


def _refusal(call: object, *args: object) -> Refused:
    with pytest.raises(Refused) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


# --- visits ---------------------------------------------------------------------------------


def test_a_visit_names_who_when_which_doors_and_what_was_raised() -> None:
    visit = decide_visit(_log(), REGISTER, THEIRS["GM-0001"], NOW)
    assert (visit.grid, visit.staff, visit.households) == (G1, "GM-0001", ("hh_101", "hh_102"))
    assert visit.findings == (Finding(FindingType.need, "楼道灯坏了", "hh_101"),)
    assert visit.logged_at == NOW


def test_a_visit_logged_late_from_an_offline_handheld_keeps_when_it_was_made() -> None:
    made = NOW - timedelta(days=3)
    assert decide_visit(_log(at=made), REGISTER, [G1], NOW).at == made


def test_another_grids_staff_may_not_log_a_visit_there() -> None:
    refused = _refusal(decide_visit, _log(who=QIAN), REGISTER, THEIRS["GM-0002"], NOW)
    assert (refused.why, refused.loc) == (Why.forbidden, ("path", "grid"))


def test_only_grid_staff_log_visits() -> None:
    admin = Principal(Role.admin, "root")
    assert _refusal(decide_visit, _log(who=admin), REGISTER, [G1], NOW).why is Why.forbidden


@pytest.mark.parametrize(
    ("overrides", "loc", "code"),
    [
        ({"at": NOW + timedelta(hours=1)}, ("body", "at"), "future"),
        ({"at": NOW - timedelta(days=31)}, ("body", "at"), "late"),
        ({"households": ("hh_101", "hh_201")}, ("body", "households", "1"), "unknown_household"),
        ({"households": ("hh_101", "hh_999")}, ("body", "households", "1"), "unknown_household"),
        ({"households": ("hh_101", "hh_101")}, ("body", "households", "1"), "duplicate"),
        (
            {"findings": (Finding(FindingType.dispute, "邻里噪音", "hh_103"),)},
            ("body", "findings", "0", "household"),
            "not_visited",
        ),
    ],
)
def test_a_bad_visit_is_refused_by_field(
    overrides: dict[str, Any], loc: tuple[str, ...], code: str
) -> None:
    refused = _refusal(decide_visit, _log(**overrides), REGISTER, [G1], NOW)
    assert (refused.why, refused.loc, refused.code) == (Why.invalid, loc, code)


def test_a_door_is_visited_only_while_it_is_on_the_register() -> None:
    gone = [Household("hh_101", G1, "3号楼", "101", ((None, Occupancy.rented),), until=NOW)]
    before = _log(households=("hh_101",), findings=(), at=NOW - timedelta(hours=1))
    assert decide_visit(before, gone, [G1], NOW).households == ("hh_101",)  # made before
    after = _log(households=("hh_101",), findings=(), at=NOW + timedelta(minutes=1))
    assert _refusal(decide_visit, after, gone, [G1], NOW).code == "unknown_household"


def test_a_visit_cannot_claim_its_findings_are_cases_already() -> None:
    claimed = Finding(FindingType.need, "x", case_id="C-1", kind="event")
    visit = decide_visit(_log(findings=(claimed,)), REGISTER, [G1], NOW)
    assert visit.findings[0].case_id is None and visit.findings[0].kind is None


# --- a finding becomes a case or a dispute ----------------------------------------------------


def _visit(*findings: Finding) -> Visit:
    return Visit("v-1", G1, "GM-0001", NOW, ("hh_101",), findings, NOW)


def _ask(index: int = 0, who: Principal = ZHAO, **kw: object) -> ReportFinding:
    return ReportFinding("v-1", index, who, 116.4005, 39.9205, **kw)  # type: ignore[arg-type]


def test_an_ordinary_finding_is_reported_as_a_case_of_the_class_named() -> None:
    visit = _visit(Finding(FindingType.sanitation, "楼下垃圾堆放", "hh_101"))
    finding, report = decide_report(visit, _ask(class_code="0102"), [G1])
    assert finding.type is FindingType.sanitation
    assert report == {
        "channel": "supervisor",
        "kind": "event",
        "class_code": "0102",
        "point": {"lon": 116.4005, "lat": 39.9205},
        "description": "走访 sanitation: 楼下垃圾堆放",
        "reporter": {"id": "GM-0001"},
    }


def test_a_dispute_finding_is_a_report_of_kind_dispute() -> None:
    assert REPORT_KIND[FindingType.dispute] == "dispute"
    visit = _visit(Finding(FindingType.dispute, "楼上漏水，邻里争执"))
    assert decide_report(visit, _ask(), [G1])[1]["kind"] == "dispute"
    refused = _refusal(decide_report, visit, _ask(kind="event"), [G1])
    assert (refused.loc, refused.code) == (("body", "kind"), "kind")
    ordinary = _visit(Finding(FindingType.need, "x"))
    assert _refusal(decide_report, ordinary, _ask(kind="dispute"), [G1]).code == "kind"


def test_a_finding_is_reported_once_by_its_own_grids_staff() -> None:
    visit = _visit(Finding(FindingType.fire_hazard, "楼道堆放杂物"))
    assert _refusal(decide_report, visit, _ask(who=QIAN), [G2]).why is Why.forbidden
    assert _refusal(decide_report, visit, _ask(index=1), [G1]).why is Why.not_found
    done = reported(visit, 0, "C-7", "event")
    assert done.findings[0].case_id == "C-7"
    assert _refusal(decide_report, done, _ask(), [G1]).code == "reported"


# --- the register -----------------------------------------------------------------------------


def _new(**kw: object) -> RegisterDoor:
    fields: dict[str, object] = {
        "household_id": "hh_new",
        "grid": G1,
        "building": "3号楼",
        "door": "105",
        "occupancy": Occupancy.rented,
    }
    return RegisterDoor(**(fields | kw))  # type: ignore[arg-type]


def test_a_door_is_added_once_and_names_only_where_the_pack_keeps_them() -> None:
    added = decide_register(_new(), REGISTER, False, NOW)
    assert (added.since, added.occupancy, added.name) == (NOW, Occupancy.rented, None)
    assert _refusal(decide_register, _new(door="101"), REGISTER, False, NOW).why is Why.conflict
    refused = _refusal(decide_register, _new(name="张三"), REGISTER, False, NOW)
    assert (refused.loc, refused.code) == (("body", "name"), "names_off")
    assert decide_register(_new(name="张三"), REGISTER, True, NOW).name == "张三"


def test_an_occupancy_change_keeps_what_it_was_before() -> None:
    before = REGISTER[0]
    after = decide_change(before, ChangeDoor(occupancy=Occupancy.rented), False, NOW)
    assert after.occupancy is Occupancy.rented
    assert after.occupancy_at(NOW - timedelta(days=1)) is Occupancy.owner_occupied
    gone = decide_change(after, ChangeDoor(removed=True), False, NOW)
    assert gone.on_register(NOW - timedelta(seconds=1)) and not gone.on_register(NOW)
    assert _refusal(
        decide_change, gone, ChangeDoor(occupancy=Occupancy.office), False, NOW
    ).code == ("removed")
    assert _refusal(decide_change, before, ChangeDoor(), False, NOW).code == "empty_change"
    # A retry changes nothing: the same door, no new fact.
    assert decide_change(after, ChangeDoor(occupancy=Occupancy.rented), False, NOW) == after
    assert decide_change(gone, ChangeDoor(removed=True), False, NOW) == gone


# --- coverage ---------------------------------------------------------------------------------


def _visited(at: datetime, *households: str, grid: str = G1) -> Visit:
    return Visit(f"v-{at.isoformat()}", grid, "GM-0001", at, households)


DEC = period_of("2026-12", TZ)


def test_periods_are_months_quarters_and_years_in_the_citys_time() -> None:
    assert DEC.start == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert DEC.end == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    q4 = period_of("2026-Q4", TZ)
    assert (q4.start.month, q4.end.year, q4.end.month) == (10, 2027, 1)
    year = period_of("2026", TZ)
    assert (year.start.year, year.end.year) == (2026, 2027)
    for bad in ("2026-13", "2026-Q5", "26-12", "december"):
        assert _refusal(period_of, bad, TZ).loc == ("query", "period")


def test_coverage_counts_each_household_once_and_leaves_vacant_doors_out() -> None:
    visits = [
        _visited(NOW, "hh_101", "hh_102"),
        _visited(NOW + timedelta(days=1), "hh_101"),  # again: counted once
        _visited(datetime(2026, 11, 30, 15, 0, tzinfo=UTC), "hh_103"),  # 23:00 on 30 Nov
        _visited(NOW, "hh_201", grid=G2),  # another grid's
        _visited(NOW, "hh_104"),  # vacant: not a household to visit
    ]
    found = coverage(G1, DEC, REGISTER, visits, NOW + timedelta(days=30))
    assert (found.households, found.visited, found.unvisited) == (3, 2, ("hh_103",))
    assert found.ratio == pytest.approx(2 / 3)
    november = coverage(G1, period_of("2026-11", TZ), REGISTER, visits, NOW)
    assert (november.visited, november.households) == (1, 3)


def test_coverage_reads_the_register_as_it_stood_at_the_periods_end() -> None:
    moved_in = Household(
        "hh_105",
        G1,
        "3号楼",
        "105",
        ((None, Occupancy.vacant), (datetime(2027, 1, 5, tzinfo=UTC), Occupancy.rented)),
    )
    added = Household("hh_106", G1, "3号楼", "106", ((NOW, Occupancy.rented),), since=NOW)
    removed = Household(
        "hh_107", G1, "3号楼", "107", ((None, Occupancy.rented),), until=NOW - timedelta(days=40)
    )
    register = [*REGISTER, moved_in, added, removed]
    december = coverage(G1, DEC, register, [_visited(NOW, "hh_106")], NOW + timedelta(days=60))
    # hh_105 was still vacant at December's end; hh_107 was gone; hh_106 was added in time.
    assert (december.households, december.visited) == (4, 1)
    # Before December is over, the register as it stands now.
    early = coverage(G1, DEC, register, [], NOW - timedelta(days=1))
    assert early.households == 3


def test_a_grid_without_households_has_no_coverage_ratio() -> None:
    found = coverage(G2, DEC, [], [], NOW)
    assert (found.households, found.ratio) == (0, None)
