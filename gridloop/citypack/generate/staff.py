"""The generated city's people (`staff.yaml`): a grid manager for every grid (Yichang: one
a grid), each supervisor with the grids `grids.geojson` names them in, and a Zhoushan-style
service team (组团式服务) in the first grid of every street. Deterministic: ids and names
follow the grids' code order."""

from __future__ import annotations

import json
from pathlib import Path

from gridloop.citypack.generate.plan import DistrictPlan
from gridloop.citypack.staff import STAFF_FILE

TEAM = (("team_leader", "社区干部"), ("police_officer", "社区民警"), ("doctor", "家庭医生"))
HEADER = (
    "# Generated: the grid's people (docs/grid.md). A grid manager a grid, the supervisors\n"
    "# grids.geojson names, a service team in the first grid of each street.\n"
)


def _entry(staff_id: str, name: str, role: str, grids: list[str]) -> str:
    # One flow mapping a line (the loader reports errors by line); JSON is YAML.
    fields = {"id": staff_id, "name": name, "role": role, "grids": grids}
    return "  - " + json.dumps(fields, ensure_ascii=False, separators=(", ", ": "))


def write_staff(out_dir: Path, plan: DistrictPlan) -> int:
    """Write `staff.yaml` into `out_dir`; how many people it names."""
    lines = [HEADER + "patrols: {outside: refuse}", "staff:"]
    for n, grid in enumerate(plan.grids, 1):
        lines.append(_entry(f"GM-{n:05d}", f"网格员 {n:05d}", "grid_manager", [grid.code]))
    supervised: dict[str, list[str]] = {}
    for grid in plan.grids:
        supervised.setdefault(grid.supervisor, []).append(grid.code)
    for supervisor, codes in sorted(supervised.items()):
        lines.append(_entry(supervisor, f"监督员 {supervisor[4:]}", "supervisor", codes))
    firsts: dict[str, str] = {}
    for grid in plan.grids:
        firsts.setdefault(grid.street, grid.code)
    for street, code in sorted(firsts.items()):
        for k, (role, title) in enumerate(TEAM, 1):
            lines.append(_entry(f"TM-{street}-{k}", f"{title} {street}-{k}", role, [code]))
    (out_dir / STAFF_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 2
