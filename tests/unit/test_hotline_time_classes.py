"""The 12345 hotline's time classes (issue 18 item 4): emergencies 2 hours, water, power, gas
and heating 24 hours, general 7 days, complex 15 days, each on the clock the pack says,
for the cases that came in by the hotline — reckoned by the one `SlaPolicy.deadline`.

Every expected deadline below is counted by hand: office hours 09:00–12:00 and 13:30–17:30
(7 hours a working day), Asia/Shanghai; March 2026 has no statutory holiday.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridloop.citypack import CityPackError, load_city_pack
from gridloop.citypack.sla import SlaPolicy
from gridloop.config import DEMO_CITY_PACK
from schemas.events import Stage

PACK = load_city_pack(DEMO_CITY_PACK)
BJ = timezone(timedelta(hours=8))
H = timedelta(hours=1)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BJ)


def due(policy: SlaPolicy, kind: str, code: str, urgency: str | None, since: datetime) -> datetime:
    found = policy.deadline(Stage.handle, kind, code, urgency, since, "hotline")
    assert found is not None
    return found.due.astimezone(BJ)


def demo_sla() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((DEMO_CITY_PACK / "sla.yaml").read_text("utf-8"))
    return raw


def pack_with(tmp_path: Path, sla: dict[str, Any]) -> Path:
    pack = tmp_path / "pack"
    shutil.copytree(DEMO_CITY_PACK, pack)
    (pack / "sla.yaml").write_text(yaml.safe_dump(sla, allow_unicode=True), "utf-8")
    return pack


def test_each_hotline_case_falls_in_its_time_class() -> None:
    sla = PACK.sla
    assert sla.time_class("event", "0102", None) == "general"  # the default
    assert sla.time_class("event", "0102", "urgent") == "emergency"
    assert sla.time_class("event", "0401", None) == "emergency"  # road collapse
    assert sla.time_class("component", "0101", None) == "utilities"  # 上水井盖: major 01
    assert sla.time_class("component", "0118", None) == "utilities"  # 路灯
    assert sla.time_class("event", "0101", None) == "complex"  # illegal structures


def test_general_is_seven_working_days() -> None:
    # Tue 10 March 15:00: 2.5 h that day, then Wed, Thu, Fri, Mon, Tue, Wed (7 h each:
    # 44.5 h), 4.5 h left on Thu 19 March: 09:00–12:00 and 13:30–15:00.
    assert due(PACK.sla, "event", "0102", None, at(2026, 3, 10, 15, 0)) == at(2026, 3, 19, 15, 0)
    # Dispatched on Saturday: the clock starts Monday 16 March 09:00, seven whole working
    # days end on Tuesday 24 March at 17:30.
    assert due(PACK.sla, "event", "0102", None, at(2026, 3, 14, 10, 0)) == at(2026, 3, 24, 17, 30)


def test_complex_is_fifteen_working_days() -> None:
    # Mon 9 March 09:00: three whole weeks, 9–13, 16–20 and 23–27 March.
    assert due(PACK.sla, "event", "0101", None, at(2026, 3, 9, 9, 0)) == at(2026, 3, 27, 17, 30)


def test_emergencies_and_utilities_run_around_the_clock() -> None:
    # Saturday night: two natural hours, over midnight into Sunday.
    assert due(PACK.sla, "event", "0102", "urgent", at(2026, 3, 7, 23, 30)) == at(2026, 3, 8, 1, 30)
    # A water manhole cover on Friday evening: 24 hours, through Saturday.
    assert due(PACK.sla, "component", "0101", None, at(2026, 3, 13, 18, 0)) == at(2026, 3, 14, 18)


def test_other_channels_keep_their_class_limits() -> None:
    since = at(2026, 3, 10, 15, 0)
    website = PACK.sla.deadline(Stage.handle, "event", "0102", None, since, "website")
    assert website is not None
    # exposed garbage: 4 working hours — 2.5 on Tuesday, 1.5 on Wednesday morning
    assert website.due.astimezone(BJ) == at(2026, 3, 11, 10, 30)
    assert PACK.sla.deadline(Stage.handle, "event", "0102", None, since) == website


def test_the_time_class_sets_the_clock_of_every_stage_and_the_resumption() -> None:
    terms = PACK.sla.terms("component", "0101", None, "hotline")
    assert terms.clock_kind == "natural" and terms.limits[Stage.handle] == 24 * H
    assert PACK.sla.terms("component", "0101", None).clock_kind == "working"
    # Parked 10 hours before its natural deadline, resumed on Sunday noon: 10 hours on.
    moved = PACK.sla.resumed(
        "component",
        "0101",
        None,
        at(2026, 3, 14, 18, 0),
        at(2026, 3, 14, 8, 0),
        at(2026, 3, 15, 12, 0),
        "hotline",
    )
    assert moved.due.astimezone(BJ) == at(2026, 3, 15, 22, 0)


def test_the_clock_is_the_packs_choice_with_its_own_calendar(tmp_path: Path) -> None:
    """A city that counts the utilities' day in working time, and supplies 2027 itself: its
    National Day week off, Saturday 9 October worked (调休)."""
    sla = demo_sla()
    sla["hotline"]["time_classes"]["utilities"]["clock"] = "working"
    holidays = [f"2027-10-0{d}" for d in range(1, 8)]
    sla["calendar"] = {2027: {"holidays": holidays, "workdays": ["2027-10-09"]}}
    policy = load_city_pack(pack_with(tmp_path, sla)).sla
    # On a working clock PT24H (= P1D) is one working day, 7 office hours: from Fri 12 March
    # 2027 16:00, 1.5 h that day and 5.5 h on Monday: 09:00–12:00, 13:30–16:00.
    assert due(policy, "component", "0101", None, at(2027, 3, 12, 16, 0)) == at(2027, 3, 15, 16)
    # General from Thu 30 September 2027 10:00: 6 h that day (10:00–12:00, 13:30–17:30),
    # 1–7 October off, then 8, 9 (the worked Saturday), 11, 12, 13 and 14 October (42 h),
    # the last hour on Friday 15 October: 09:00–10:00.
    assert due(policy, "event", "0102", None, at(2027, 9, 30, 10, 0)) == at(2027, 10, 15, 10)


def test_a_broken_hotline_profile_is_refused_with_every_error(tmp_path: Path) -> None:
    sla = demo_sla()
    hotline = sla["hotline"]
    hotline["default"] = "ordinary"
    hotline["time_classes"]["general"]["limit"] = "PT0S"
    hotline["assign"].append({"match": {"kind": "event", "code": "9999"}, "time_class": "urgent"})
    hotline["assign"].append({"match": {"code": "0102"}, "time_class": "general"})
    with pytest.raises(CityPackError) as refused:
        load_city_pack(pack_with(tmp_path, sla))
    assert refused.value.errors == [
        "sla.yaml: hotline.time_classes.general.limit: must be positive",
        "sla.yaml: hotline.default: unknown time class ordinary",
        "sla.yaml: hotline.assign.4.time_class: unknown time class urgent "
        "(known: complex, emergency, general, utilities)",
        "sla.yaml: hotline.assign.4: unknown event class 9999",
        "sla.yaml: hotline.assign.5: a class code needs its kind",
    ]


def test_a_bad_clock_is_refused(tmp_path: Path) -> None:
    sla = demo_sla()
    sla["hotline"]["time_classes"]["emergency"]["clock"] = "lunar"
    with pytest.raises(CityPackError) as refused:
        load_city_pack(pack_with(tmp_path, sla))
    [error] = refused.value.errors
    assert error.startswith("sla.yaml: hotline.time_classes.emergency.clock: Input should be")
