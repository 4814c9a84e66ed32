"""Keys of the duplicate search (重复上报): a case is found by its kind, class and the cell
of its point, an equality that an index serves on any MongoDB server.

The search asks which open cases of a class lie around a report. As range conditions on the
coordinates, or `$geoWithin` on a 2dsphere index, SecantusDB scanned or tested every case
(≈ 0.7 s a query at 3,000 cases, docs/benchmarks.md); as `open_near: {$in: keys}` it reads
the few open cases of those cells (a case's keys are in `open_near` while it is open alone:
services/projections/core.py). Each case carries a key at three cell sizes, so that a
report's box covers a handful of cells whatever its class's radius (up to the pack's 5 km).
Pure.
"""

from __future__ import annotations

import math

# ≈ 85 m × 111 m, 850 m × 1.1 km, 8.5 km × 11 km at Beijing's latitude.
LEVELS = (0.001, 0.01, 0.1)
MOST_CELLS = 16  # a box covering more cells than this at a level is searched a level up

Box = tuple[float, float, float, float]  # min lon, min lat, max lon, max lat
EARTH_RADIUS_M = 6_371_008.8


def metres(a_lon: float, a_lat: float, b_lon: float, b_lat: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(a_lat), math.radians(b_lat)
    dp, dl = p2 - p1, math.radians(b_lon - a_lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


def box_around(lon: float, lat: float, radius_m: float) -> Box:
    """(min lon, min lat, max lon, max lat) around a point holding every point within
    `radius_m`: the database pre-filter before the exact distance."""
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
    return lon - dlon, lat - dlat, lon + dlon, lat + dlat


def _key(level: int, kind: str, class_code: str, x: int, y: int) -> str:
    return f"{level}:{kind}:{class_code}:{x}:{y}"


def keys_of(kind: str, class_code: str, lon: float, lat: float) -> list[str]:
    """A case's keys, one a level (the `near` field of its projection)."""
    return [
        _key(i, kind, class_code, math.floor(lon / size), math.floor(lat / size))
        for i, size in enumerate(LEVELS)
    ]


def _cells(box: Box, size: float) -> tuple[range, range]:
    w, s, e, n = box
    xs = range(math.floor(w / size), math.floor(e / size) + 1)
    return xs, range(math.floor(s / size), math.floor(n / size) + 1)


def keys_around(kind: str, class_code: str, box: Box) -> list[str]:
    """Keys of every cell `box` touches, at the finest level where they are few: a case of
    the class whose point is in the box has one of them."""
    level = next(
        (
            i
            for i, size in enumerate(LEVELS)
            if math.prod(map(len, _cells(box, size))) <= MOST_CELLS
        ),
        len(LEVELS) - 1,
    )
    xs, ys = _cells(box, LEVELS[level])
    return [_key(level, kind, class_code, x, y) for x in xs for y in ys]
