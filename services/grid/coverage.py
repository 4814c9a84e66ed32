"""Coverage (走访覆盖率), pure: the share of a grid's households visited in a period — of the
register as it stands at the period's end, vacant doors left out (there is no one to
visit). Periods are months, quarters and years in the city's time. No HTTP, Kafka or MongoDB.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from gridloop.citypack.households import Occupancy
from gridloop.refusal import invalid
from services.grid.doors import Household
from services.grid.visiting import Visit

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_QUARTER = re.compile(r"(\d{4})-Q([1-4])")
_YEAR = re.compile(r"(\d{4})")


@dataclass(frozen=True)
class Period:
    """A month (`2026-12`), a quarter (`2026-Q4`: Zhoushan visits each household four times
    a year) or a year (`2026`), from `start` to `end` (exclusive) in the city's time."""

    name: str
    start: datetime
    end: datetime


def period_of(name: str, timezone: str) -> Period:
    """The period `name` names, in the city's time zone; refused (422) when it names none."""
    first, months = _bounds(name)
    tz = ZoneInfo(timezone)
    last = _add_months(first, months)
    return Period(
        name,
        datetime(first.year, first.month, 1, tzinfo=tz),
        datetime(last.year, last.month, 1, tzinfo=tz),
    )


def _bounds(name: str) -> tuple[date, int]:
    bad = invalid(
        ("query", "period"),
        f"{name[:20]!r} is not a period: use 2026-12, 2026-Q4 or 2026",
        "bad_period",
    )
    if m := _MONTH.fullmatch(name):
        if not 1 <= int(m[2]) <= 12:
            raise bad
        return date(int(m[1]), int(m[2]), 1), 1
    if m := _QUARTER.fullmatch(name):
        return date(int(m[1]), 3 * int(m[2]) - 2, 1), 3
    if m := _YEAR.fullmatch(name):
        return date(int(m[1]), 1, 1), 12
    raise bad


def _add_months(first: date, months: int) -> date:
    total = first.year * 12 + first.month - 1 + months
    return date(total // 12, total % 12 + 1, 1)


@dataclass(frozen=True)
class Coverage:
    """走访覆盖率: of a grid's `households` to visit in a period (on the register at its end,
    not vacant), how many were `visited`; `unvisited` names the rest, by id."""

    grid: str
    period: str
    households: int
    visited: int
    unvisited: tuple[str, ...] = field(default=())

    @property
    def ratio(self) -> float | None:
        return self.visited / self.households if self.households else None


def coverage(
    grid: str,
    period: Period,
    register: Iterable[Household],
    visits: Iterable[Visit],
    now: datetime,
) -> Coverage:
    """Households visited ÷ households of `grid` in `period`: the register as it stands at
    the period's end (or `now`, for a period not over), vacant doors left out; a household
    counts once however often it was visited, by visits made in the period."""
    at = min(period.end - timedelta(microseconds=1), now)
    due = sorted(
        h.id
        for h in register
        if h.grid == grid
        and h.on_register(at)
        and h.occupancy_at(at) not in (None, Occupancy.vacant)
    )
    seen = {
        hid
        for v in visits
        if v.grid == grid and period.start <= v.at < period.end
        for hid in v.households
    }
    visited = [h for h in due if h in seen]
    return Coverage(
        grid, period.name, len(due), len(visited), tuple(h for h in due if h not in seen)
    )
