"""Duplicates (重复上报): a report of the same class within a distance and a time window of
an open case is merged into it. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gridloop.nearby import Box, box_around, metres
from schemas.events import Point


@dataclass(frozen=True)
class Nearby:
    """An open case of the report's class, as a candidate it may duplicate."""

    case_id: str
    lon: float
    lat: float
    reported_at: datetime


def find_duplicate(
    candidates: Sequence[Nearby],
    case_id: str,
    point: Point,
    now: datetime,
    radius_m: float,
    window: timedelta,
) -> tuple[Nearby, float] | None:
    """The nearest open case within `radius_m` reported within `window` before `now` (the
    earliest reported on a tie), with its distance; None if there is none."""
    best: tuple[float, datetime, str, Nearby] | None = None
    for c in candidates:
        if c.case_id == case_id or not (now - window <= c.reported_at <= now):
            continue
        d = metres(point.lon, point.lat, c.lon, c.lat)
        if d <= radius_m and (best is None or (d, c.reported_at, c.case_id) < best[:3]):
            best = (d, c.reported_at, c.case_id, c)
    return (best[3], best[0]) if best else None


def search_box(point: Point, radius_m: float) -> Box:
    """The box around `point` holding every point within `radius_m`."""
    return box_around(point.lon, point.lat, radius_m)


def within(box: Box, lon: float, lat: float) -> bool:
    w, s, e, n = box
    return w <= lon <= e and s <= lat <= n
