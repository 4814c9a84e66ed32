"""Working time (工作时间): the city's office hours on the working days of the Chinese
calendar, in Asia/Shanghai. Pure: no I/O, no clock reading.

A working day is a weekday that is not a statutory holiday (法定节假日), or a weekend day
that is an adjusted working day (调休上班). The days of 2004–2026 come from the
`chinesecalendar` package; a city pack supplies later years (each is published in November).
A year nobody supplied is reckoned on weekends and the holidays fixed by date alone
(`FIXED_HOLIDAYS`), and `assumed_years` says so, so that a deadline computed that way can be
flagged instead of crashing.

Classes whose clock runs in natural time (emergencies, 24/7) use `NaturalClock`: both clocks
answer the same three questions.

    clock.add(start, limit)        the instant `limit` of working time after `start`
    clock.between(start, end)      the working time from `start` to `end`
    clock.assumed_years(a, b)      the years in [a, b] reckoned on weekends alone

Durations of a working clock are working time: `P1D` in a pack is one working day, that is
the length of the office hours of one day (`WorkingCalendar.working`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
ZERO = timedelta(0)
_DAY = timedelta(days=1)
# The statutory holidays fixed by date (《全国年节及纪念日放假办法》, art. 2, as revised in
# 2024, in force from 2025): New Year's Day 1 January, Labour Day 1–2 May, National Day
# 1–3 October. The lunar ones (Spring Festival, Dragon Boat, Mid-Autumn) and Qingming, and
# every 调休 (adjusted weekend), are known only from the year's notice: a fallback year
# has them as ordinary days, which is why it stays flagged.
FIXED_HOLIDAYS: frozenset[tuple[int, int]] = frozenset(
    {(1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)}
)


@dataclass(frozen=True)
class YearDays:
    """The exceptions of one year: days off on weekdays and working days on weekends."""

    holidays: frozenset[date]  # 法定节假日: days off (the weekend days inside one too)
    workdays: frozenset[date] = frozenset()  # 调休: weekend days that are working days


def chinese_calendar_years() -> dict[int, YearDays]:
    """The years the `chinesecalendar` package knows (2004–2026 in version 1.11)."""
    from chinese_calendar import constants  # the package is data; imported on demand

    years: dict[int, tuple[set[date], set[date]]] = {}
    for day in constants.holidays:
        years.setdefault(day.year, (set(), set()))[0].add(day)
    for day in constants.workdays:
        years.setdefault(day.year, (set(), set()))[1].add(day)
    return {y: YearDays(frozenset(h), frozenset(w)) for y, (h, w) in years.items()}


@dataclass(frozen=True)
class OfficeHours:
    """The office periods of a working day (办公时间), in local time, e.g. 09:00–12:00 and
    13:30–18:00: sorted, not overlapping, each ending after it starts."""

    periods: tuple[tuple[time, time], ...]

    def __post_init__(self) -> None:
        if not self.periods:
            raise ValueError("office hours need at least one period")
        previous = time.min
        for n, (start, end) in enumerate(self.periods):
            if start.tzinfo or end.tzinfo:
                raise ValueError("office hours are local times, without a zone")
            if not start < end:
                raise ValueError(f"office period {start}–{end} must end after it starts")
            if n and start < previous:
                raise ValueError("office periods must be sorted and must not overlap")
            previous = end

    @property
    def day_length(self) -> timedelta:
        """The working time of one working day."""
        return sum((_offset(e) - _offset(s) for s, e in self.periods), ZERO)


def _offset(at: time) -> timedelta:
    return timedelta(
        hours=at.hour, minutes=at.minute, seconds=at.second, microseconds=at.microsecond
    )


def _at(day: date, at: time) -> datetime:
    return datetime.combine(day, at, SHANGHAI)


class Clock(Protocol):
    def add(self, start: datetime, duration: timedelta) -> datetime: ...

    def between(self, start: datetime, end: datetime) -> timedelta: ...

    def assumed_years(self, start: datetime, end: datetime) -> frozenset[int]: ...

    def working(self, limit: timedelta) -> timedelta: ...


class NaturalClock:
    """Natural time, 24/7 (自然时间): emergencies."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        return (start + max(duration, ZERO)).astimezone(UTC)

    def between(self, start: datetime, end: datetime) -> timedelta:
        return max(end - start, ZERO)

    def assumed_years(self, start: datetime, end: datetime) -> frozenset[int]:
        return frozenset()

    def working(self, limit: timedelta) -> timedelta:
        return limit


class WorkingCalendar:
    """Office hours on the working days of the Chinese calendar (工作日)."""

    def __init__(
        self,
        years: Mapping[int, YearDays],
        hours: OfficeHours,
        zone: ZoneInfo = SHANGHAI,
    ) -> None:
        if zone != SHANGHAI:
            raise ValueError("only Asia/Shanghai is supported (no daylight saving)")
        self.years = dict(years)
        self.hours = hours

    # --- days ---------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        known = self.years.get(day.year)
        if known is None:  # nobody supplied the year: weekends and the fixed holidays alone
            return day.weekday() < 5 and (day.month, day.day) not in FIXED_HOLIDAYS
        if day in known.workdays:
            return True
        return day.weekday() < 5 and day not in known.holidays

    def working_days(self, first: date, last: date) -> list[date]:
        days, day = [], first
        while day <= last:
            if self.is_working_day(day):
                days.append(day)
            day += _DAY
        return days

    # --- durations ----------------------------------------------------------------------

    def working(self, limit: timedelta) -> timedelta:
        """A pack duration as working time: its days are working days of office hours."""
        return limit.days * self.hours.day_length + (limit - timedelta(days=limit.days))

    def _periods(self, day: date) -> Iterable[tuple[datetime, datetime]]:
        if self.is_working_day(day):
            for start, end in self.hours.periods:
                yield _at(day, start), _at(day, end)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant by which `duration` of working time has passed since
        `start`; `start` itself for a zero duration."""
        if duration <= ZERO:
            return start.astimezone(UTC)
        now = start.astimezone(SHANGHAI)
        remaining = duration
        day = now.date()
        opening = _offset(self.hours.periods[0][0])
        while True:
            # Whole working days at once, when the day has not started yet.
            if (
                remaining > self.hours.day_length
                and now <= _at(day, time.min) + opening
                and self.is_working_day(day)
            ):
                remaining -= self.hours.day_length
                day += _DAY
                now = _at(day, time.min)
                continue
            for period_start, period_end in self._periods(day):
                if period_end <= now:
                    continue
                begin = max(period_start, now)
                available = period_end - begin
                if remaining <= available:
                    return (begin + remaining).astimezone(UTC)
                remaining -= available
            day += _DAY
            now = _at(day, time.min)

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The working time in [start, end]; zero when `end` is not after `start`."""
        if end <= start:
            return ZERO
        a, b = start.astimezone(SHANGHAI), end.astimezone(SHANGHAI)
        total, day = ZERO, a.date()
        while day <= b.date():
            for period_start, period_end in self._periods(day):
                lo, hi = max(period_start, a), min(period_end, b)
                if hi > lo:
                    total += hi - lo
            day += _DAY
        return total

    def assumed_years(self, start: datetime, end: datetime) -> frozenset[int]:
        """The years from `start` to `end` (either order) that nobody supplied: reckoned on
        weekends and the fixed-date holidays alone."""
        a = start.astimezone(SHANGHAI).year
        b = end.astimezone(SHANGHAI).year
        return frozenset(y for y in range(min(a, b), max(a, b) + 1) if y not in self.years)


def merge_years(*sources: Mapping[int, YearDays]) -> dict[int, YearDays]:
    """Later sources win a year whole (a city's own year replaces the package's)."""
    merged: dict[int, YearDays] = {}
    for source in sources:
        merged.update(source)
    return merged


def year_days(holidays: Sequence[date], workdays: Sequence[date] = ()) -> YearDays:
    return YearDays(frozenset(holidays), frozenset(workdays))
