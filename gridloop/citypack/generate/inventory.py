"""The component inventory (部件普查) of a generated district, written as `components.csv`
class by class with numpy, in a few seconds for the full district.

Each class's components are spread over the grids by a multinomial draw: a grid's weight is
its busyness (shared by every class: a busy grid has more of everything) times a per-class
variation. Road components stand along the grid's edges, where the streets run; area
components anywhere in it. Every point is at least 2 % of the cell inside its grid, so it
lies in that grid alone. Ids are numbered per class in grid order."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from gridloop.citypack.components import COMPONENT_COLUMNS
from gridloop.citypack.generate.catalogue import Catalogue, ComponentSpec
from gridloop.citypack.generate.geometry import Floats, Ints
from gridloop.citypack.generate.plan import DistrictPlan

STATUS_COLUMN = "status"
_MARGIN = 0.02  # of the cell: keeps every point off the edges it shares with neighbours


def write_components(
    path: Path,
    catalogue: Catalogue,
    plan: DistrictPlan,
    fraction: float,
    rng: np.random.Generator,
) -> int:
    """Write the inventory; return the number of components."""
    bounds = np.array([g.bounds for g in plan.grids], dtype=np.float64)
    busy = rng.gamma(2.0, 0.5, len(plan.grids))
    offices = np.array([catalogue.office_code(g.street) for g in plan.grids], dtype=object)
    communities = [g.community.name.split()[0] for g in plan.grids]
    statuses = list(catalogue.statuses)
    shares = np.array([catalogue.statuses[s] for s in statuses])
    district = catalogue.district["code"]
    written = 0
    with path.open("w", encoding="utf-8", newline="") as file:
        out = csv.writer(file, lineterminator="\n")
        out.writerow([*COMPONENT_COLUMNS, STATUS_COLUMN])
        for spec in catalogue.components:
            count = round(spec.count * fraction)
            weights = busy * rng.gamma(4.0, 0.25, len(plan.grids))
            grid = np.repeat(
                np.arange(len(plan.grids)), rng.multinomial(count, weights / weights.sum())
            )
            lon, lat = _points(spec, bounds[grid], rng)
            street_kept = rng.random(count) < spec.street_maintained
            maintainer = np.where(street_kept, offices[grid], spec.owner)
            status = rng.choice(len(statuses), size=count, p=shares)
            prefix = f"{district}{spec.code}"
            out.writerows(
                (
                    f"{prefix}{n:06d}",
                    spec.code,
                    f"{spec.name} {communities[g]}",
                    f"{x:.6f}",
                    f"{y:.6f}",
                    plan.grids[g].code,
                    spec.owner,
                    m,
                    statuses[s],
                )
                for n, g, x, y, m, s in zip(
                    range(1, count + 1),
                    grid.tolist(),
                    lon.tolist(),
                    lat.tolist(),
                    maintainer.tolist(),
                    status.tolist(),
                    strict=True,
                )
            )
            written += count
    return written


def _points(spec: ComponentSpec, cell: Floats, rng: np.random.Generator) -> tuple[Floats, Floats]:
    """Points in the cells (rows of west, south, east, north) as fractions u, v of the cell."""
    count = len(cell)
    u = rng.uniform(_MARGIN, 1 - _MARGIN, count)
    v = rng.uniform(_MARGIN, 1 - _MARGIN, count)
    if spec.place == "road":
        # Along one of the four edges, 2–8 % of the cell (2–8 m) in from it.
        side: Ints = rng.integers(0, 4, count)
        inset = rng.uniform(_MARGIN, 0.08, count)
        u = np.select([side == 0, side == 1], [inset, 1 - inset], u)
        v = np.select([side == 2, side == 3], [inset, 1 - inset], v)
    lon = cell[:, 0] + u * (cell[:, 2] - cell[:, 0])
    lat = cell[:, 1] + v * (cell[:, 3] - cell[:, 1])
    return lon, lat
