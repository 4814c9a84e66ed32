"""Grid assignment on the demo city: points located per second in bulk, and the time of one.

    python -m bench.bench_grids [N]

Random points over a box around the demo district (more than half fall outside every grid,
so refusals are measured too). The ceiling is shapely's STRtree query alone, on the same
points, without choosing among edge ties or mapping indexes to grids.
"""

from __future__ import annotations

import platform
import random
import statistics
import sys
import time

import numpy as np
import shapely

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK


def main(n: int = 1_000_000) -> None:
    pack = load_city_pack(DEMO_CITY_PACK)
    rng = random.Random(7)
    lons = [rng.uniform(116.3995, 116.4085) for _ in range(n)]
    lats = [rng.uniform(39.9195, 39.9214) for _ in range(n)]

    tree = shapely.STRtree([pack.polygon(g.code) for g in pack.grids])
    tree.query(shapely.points([116.4], [39.92]))  # the tree is built on its first query
    pack.locate_many(lons[:10], lats[:10])
    started = time.perf_counter()
    tree.query(shapely.points(np.asarray(lons), np.asarray(lats)), predicate="intersects")
    ceiling = n / (time.perf_counter() - started)

    started = time.perf_counter()
    found = pack.locate_many(lons, lats)
    bulk = n / (time.perf_counter() - started)
    outside = sum(g is None for g in found) / n

    singles = []
    for i in range(min(n, 100_000)):
        t = time.perf_counter()
        pack.locate(lons[i], lats[i])
        singles.append(time.perf_counter() - t)
    singles.sort()
    p50 = statistics.median(singles) * 1e6
    p99 = singles[int(len(singles) * 0.99)] * 1e6

    print(f"machine: {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}")
    print(f"points: {n:,}, outside every grid: {outside:.0%}")
    print(f"{'STRtree query alone (bulk)':34}{ceiling:>14,.0f} points/s")
    print(f"{'locate_many (bulk)':34}{bulk:>14,.0f} points/s")
    print(f"{'locate (one point) p50 / p99':34}{p50:>10.1f} / {p99:.1f} µs")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
