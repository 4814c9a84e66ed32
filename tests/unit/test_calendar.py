"""Working time: the laws of adding and measuring it (hypothesis), the holiday weeks of 2025
and 2026 as the State Council published them, and years that a city supplies or nobody did."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gridloop import calendar
from gridloop.calendar import (
    SHANGHAI,
    ZERO,
    NaturalClock,
    OfficeHours,
    WorkingCalendar,
    YearDays,
    chinese_calendar_years,
    merge_years,
)

HOURS = OfficeHours(((time(9), time(12)), (time(13, 30), time(17, 30))))  # 7 h a day
CALENDAR = WorkingCalendar(chinese_calendar_years(), HOURS)
H = timedelta(hours=1)


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


# --- the laws ---------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2024, 12, 1),
    max_value=datetime(2027, 2, 1),  # reaches into 2027: reckoned on weekends alone
    timezones=st.just(UTC),
)
durations = st.timedeltas(min_value=ZERO, max_value=timedelta(days=12))  # ≈ 41 working days
fast = settings(max_examples=150, deadline=None)


@fast
@given(instants, durations)
def test_adding_then_measuring_gives_back_the_duration(start: datetime, d: timedelta) -> None:
    end = CALENDAR.add(start, d)
    assert end >= start
    assert CALENDAR.between(start, end) == d


@fast
@given(instants, instants)
def test_adding_what_was_measured_reaches_no_later_than_the_end(a: datetime, b: datetime) -> None:
    start, end = min(a, b), max(a, b)
    reached = CALENDAR.add(start, CALENDAR.between(start, end))
    assert start <= reached <= end
    assert CALENDAR.between(reached, end) == ZERO  # only non-working time is left over


@fast
@given(instants, durations, durations)
def test_adding_in_two_steps_is_adding_the_sum(
    start: datetime, d1: timedelta, d2: timedelta
) -> None:
    assert CALENDAR.add(CALENDAR.add(start, d1), d2) == CALENDAR.add(start, d1 + d2)


@fast
@given(instants, instants, instants)
def test_measuring_is_additive(a: datetime, b: datetime, c: datetime) -> None:
    x, y, z = sorted((a, b, c))
    assert CALENDAR.between(x, y) + CALENDAR.between(y, z) == CALENDAR.between(x, z)


@fast
@given(instants, durations, durations)
def test_adding_is_monotone(start: datetime, d1: timedelta, d2: timedelta) -> None:
    shorter, longer = min(d1, d2), max(d1, d2)
    assert CALENDAR.add(start, shorter) <= CALENDAR.add(start, longer)


@fast
@given(instants, durations)
def test_a_positive_duration_ends_inside_office_hours_on_a_working_day(
    start: datetime, d: timedelta
) -> None:
    if d == ZERO:
        assert CALENDAR.add(start, d) == start
        return
    end = CALENDAR.add(start, d).astimezone(SHANGHAI)
    assert CALENDAR.is_working_day(end.date())
    assert any(s < end.time() <= e for s, e in HOURS.periods)


@fast
@given(instants, durations)
def test_the_natural_clock_is_plain_arithmetic(start: datetime, d: timedelta) -> None:
    clock = NaturalClock()
    assert clock.add(start, d) == start + d
    assert clock.between(start, start + d) == d
    assert clock.between(start + d, start) == ZERO


def test_a_working_day_in_a_pack_is_the_length_of_the_office_hours() -> None:
    assert HOURS.day_length == 7 * H
    assert CALENDAR.working(timedelta(days=15)) == 15 * 7 * H
    assert CALENDAR.working(timedelta(days=1, hours=2)) == 9 * H
    assert CALENDAR.working(timedelta(hours=4)) == 4 * H
    assert NaturalClock().working(timedelta(days=1)) == 24 * H


# --- examples: an ordinary week ---------------------------------------------------------------


def test_four_working_hours_skip_lunch_and_the_night() -> None:
    # Tuesday 2025-03-04, 15:00: 2.5 h left today, 1.5 h tomorrow morning.
    assert CALENDAR.add(local(2025, 3, 4, 15), 4 * H) == local(2025, 3, 5, 10, 30)
    # 11:00: one hour before lunch, the rest after 13:30.
    assert CALENDAR.add(local(2025, 3, 4, 11), 2 * H) == local(2025, 3, 4, 14, 30)
    # Reported at night: the clock starts at 09:00.
    assert CALENDAR.add(local(2025, 3, 4, 22), H) == local(2025, 3, 5, 10)


def test_a_friday_evening_report_is_due_on_monday() -> None:
    assert CALENDAR.add(local(2025, 3, 7, 17), H) == local(2025, 3, 10, 9, 30)
    assert CALENDAR.between(local(2025, 3, 7, 17), local(2025, 3, 10, 9, 30)) == H


def test_the_end_of_a_period_is_the_earliest_instant() -> None:
    assert CALENDAR.add(local(2025, 3, 4, 9), 3 * H) == local(2025, 3, 4, 12)
    assert CALENDAR.add(local(2025, 3, 4, 9), 7 * H) == local(2025, 3, 4, 17, 30)


# --- examples: the holiday weeks of 2025 and 2026 ---------------------------------------------


def test_national_day_2025_and_its_adjusted_weekends() -> None:
    # Off 1–8 October; Sunday 28 September and Saturday 11 October are working days (调休).
    assert CALENDAR.is_working_day(date(2025, 9, 28))
    assert not any(CALENDAR.is_working_day(date(2025, 10, d)) for d in range(1, 9))
    assert CALENDAR.is_working_day(date(2025, 10, 9))
    assert CALENDAR.is_working_day(date(2025, 10, 11))
    # Handed in on Tuesday 30 September at 17:00, one working day (7 h) is due on 9 October:
    # half an hour on the 30th, six and a half on the 9th.
    assert CALENDAR.add(local(2025, 9, 30, 17), 7 * H) == local(2025, 10, 9, 17)


def test_spring_festival_2025() -> None:
    # Off 28 January – 4 February; Sunday 26 January and Saturday 8 February are working.
    assert CALENDAR.is_working_day(date(2025, 1, 26))
    assert not CALENDAR.is_working_day(date(2025, 1, 28))
    assert not CALENDAR.is_working_day(date(2025, 2, 4))
    assert CALENDAR.is_working_day(date(2025, 2, 8))
    start, end = local(2025, 1, 27, 9), local(2025, 2, 10, 9)
    # 27 Jan, 5, 6, 7, 8 Feb: five working days in two calendar weeks.
    assert CALENDAR.between(start, end) == 5 * 7 * H


def test_spring_festival_2026() -> None:
    # Off 15–23 February; Saturdays 14 and 28 February are working days.
    assert CALENDAR.working_days(date(2026, 2, 13), date(2026, 2, 28)) == [
        date(2026, 2, 13),
        date(2026, 2, 14),
        *(date(2026, 2, d) for d in range(24, 29)),
    ]
    assert CALENDAR.add(local(2026, 2, 14, 17, 30), H) == local(2026, 2, 24, 10)


def test_national_day_2026() -> None:
    # Off 1–7 October; Sunday 20 September and Saturday 10 October are working days.
    assert CALENDAR.is_working_day(date(2026, 9, 20))
    assert not CALENDAR.is_working_day(date(2026, 10, 7))
    assert CALENDAR.is_working_day(date(2026, 10, 10))
    # 15 working days from Monday 28 September: 28–30 Sep, 8–9, 10 (Sat), 12–16, 19–22 Oct.
    due = CALENDAR.add(local(2026, 9, 28, 9), CALENDAR.working(timedelta(days=15)))
    assert due == local(2026, 10, 22, 17, 30)


# --- years beyond the package: supplied by the city, or reckoned on weekends alone ------------


def test_a_year_nobody_supplied_is_reckoned_on_weekends_alone_and_flagged() -> None:
    assert CALENDAR.is_working_day(date(2027, 1, 4))  # an ordinary Monday
    assert not CALENDAR.is_working_day(date(2027, 1, 2))  # Saturday
    due = CALENDAR.add(local(2026, 12, 30, 17), H)
    assert due == local(2026, 12, 31, 9, 30)
    assert CALENDAR.assumed_years(local(2026, 12, 31, 17), local(2027, 1, 4)) == frozenset({2027})
    assert CALENDAR.assumed_years(local(2026, 1, 5), local(2026, 12, 31)) == frozenset()


def test_the_fallback_keeps_new_years_day_off() -> None:
    """Issue 19: 2 working hours from 17:00 on Thursday 31 December 2026 reached 10:30 on
    New Year's Day 2027. Half an hour on Thursday, then Friday 1 January (a statutory
    holiday), the weekend: 1.5 h on Monday 4 January, 10:30; still flagged as assumed."""
    start = local(2026, 12, 31, 17)
    assert not CALENDAR.is_working_day(date(2027, 1, 1))
    due = CALENDAR.add(start, 2 * H)
    assert due == local(2027, 1, 4, 10, 30)
    assert CALENDAR.assumed_years(start, due) == frozenset({2027})


def test_the_fallback_keeps_the_fixed_date_holidays_of_may_and_october_off() -> None:
    """2028 (not in the package): 1–2 May are Monday and Tuesday, 1 October a Sunday and
    2–3 October Monday and Tuesday: all off. 4 May, 4 October are working days; the lunar
    holidays cannot be known without the year's notice (Mid-Autumn 2028 is 3 October)."""
    for day in (date(2028, 5, 1), date(2028, 5, 2), date(2028, 10, 2), date(2028, 10, 3)):
        assert day.weekday() < 5 and not CALENDAR.is_working_day(day), day
    assert CALENDAR.is_working_day(date(2028, 5, 3))
    assert CALENDAR.is_working_day(date(2028, 10, 4))
    # Friday 28 April 2028, 17:00 + 1 working hour: Monday and Tuesday are off.
    assert CALENDAR.add(local(2028, 4, 28, 17), H) == local(2028, 5, 3, 9, 30)
    assert CALENDAR.assumed_years(local(2028, 4, 28), local(2028, 5, 3)) == frozenset({2028})


def test_the_fixed_date_holidays_are_the_state_councils() -> None:
    """The dates the fallback keeps off are holidays in every year the package holds under
    the 2024 regulation (2025 on), the State Council's notices as published."""
    years = chinese_calendar_years()
    current = [y for y in years if y >= 2025]
    assert current, "the package holds no year of the current regulation"
    for year in current:
        for month, day in calendar.FIXED_HOLIDAYS:
            assert date(year, month, day) in years[year].holidays, (year, month, day)


def test_a_year_the_city_supplies_is_used_and_not_flagged() -> None:
    city_2027 = {2027: YearDays(frozenset({date(2027, 1, 1)}), frozenset({date(2027, 1, 9)}))}
    calendar = WorkingCalendar(merge_years(chinese_calendar_years(), city_2027), HOURS)
    assert not calendar.is_working_day(date(2027, 1, 1))
    assert calendar.is_working_day(date(2027, 1, 9))  # a Saturday made a working day
    assert calendar.add(local(2026, 12, 31, 17), H) == local(2027, 1, 4, 9, 30)
    assert calendar.assumed_years(local(2026, 12, 31), local(2027, 1, 4)) == frozenset()


def test_a_city_year_replaces_the_package_year_whole() -> None:
    merged = merge_years(chinese_calendar_years(), {2026: YearDays(frozenset())})
    calendar = WorkingCalendar(merged, HOURS)
    assert calendar.is_working_day(date(2026, 10, 1))
    assert not calendar.is_working_day(date(2026, 10, 10))  # no 调休 any more


def test_the_package_knows_2004_to_2026() -> None:
    years = chinese_calendar_years()
    assert min(years) == 2004
    assert max(years) >= 2026


def test_office_hours_are_validated() -> None:
    bad = [
        (),
        ((time(12), time(9)),),
        ((time(9), time(12)), (time(11), time(14))),
    ]
    for periods in bad:
        try:
            OfficeHours(periods)
        except ValueError:
            continue
        raise AssertionError(f"{periods} accepted")
