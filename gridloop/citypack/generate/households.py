"""The generated city's household register (`households.csv`): tens of doors a grid — one to
three buildings of a few floors, two to four doors a floor — with Yichang's occupancy classes
in plausible shares (mostly owner-occupied, a quarter rented, some offices and vacant doors).
No names. Deterministic: the same seed gives the same file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from gridloop.citypack.generate.plan import DistrictPlan
from gridloop.citypack.households import HOUSEHOLD_COLUMNS, HOUSEHOLDS_FILE, Occupancy

OCCUPANCY = [o.value for o in Occupancy]
SHARES = [0.62, 0.24, 0.06, 0.08]  # owner-occupied, rented, office, vacant


def write_households(out_dir: Path, plan: DistrictPlan, rng: np.random.Generator) -> int:
    """Write `households.csv` into `out_dir`; how many doors it lists."""
    rows: list[tuple[str, ...]] = []
    for grid in plan.grids:
        for b in range(int(rng.integers(1, 4))):
            building = f"{grid.community.name} {int(grid.code[-3:])}-{b + 1}号楼"
            floors, per_floor = int(rng.integers(2, 5)), int(rng.integers(2, 5))
            uses = rng.choice(OCCUPANCY, size=floors * per_floor, p=SHARES)
            for i, use in enumerate(uses):
                floor, door = divmod(i, per_floor)
                rows.append((grid.code, building, f"{floor + 1}0{door + 1}", str(use)))
    with (out_dir / HOUSEHOLDS_FILE).open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HOUSEHOLD_COLUMNS)
        writer.writerows(rows)
    return len(rows)
