"""The grid's people (网格的人) — the pack's `staff.yaml` (optional): who works which grid in
which role, and how a patrol's clock-in outside its grid is treated. Loaded and validated
with the rest of the pack (`load_city_pack(path).staff`, an empty register without the
file); pure.

    patrols:
      outside: refuse        # a clock-in or track point outside one's grid: refuse | flag
    staff:
      - id: GM-0001          # the credential's subject (Role.grid_staff, Role.supervisor)
        name: 张敏            # a display name; no phone, no other personal data
        role: grid_manager   # 网格管理员 (Yichang: one per grid)
        grids: ["110101001001001"]
      - id: SUP-0001
        name: 监督员 一
        role: supervisor     # 监督员: must be the grids' `supervisor` in grids.geojson
        grids: ["110101001001001", "110101001001002"]
      - id: TM-0001
        name: 社区干部 王
        role: community_cadre  # Zhoushan's service team (组团式服务)
        grids: ["110101001001001"]

The register seeds the grid service (services/grid), whose API changes it afterwards.
Every error of the file is listed at load: an unknown grid, an id used twice, a grid with
two grid managers, a supervisor the grids do not name, or a grid whose named supervisor is
not in the register.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from gridloop.citypack.errors import line_of, read_model, yaml_lines
from gridloop.citypack.model import Grid

STAFF_FILE = "staff.yaml"
StaffId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
GridCode = Annotated[str, Field(pattern=r"^\d{14,15}$")]


class StaffRole(StrEnum):
    """What a person does in a grid."""

    grid_manager = "grid_manager"  # 网格管理员 / 网格员 (Yichang: one per grid)
    supervisor = "supervisor"  # 监督员: patrols and verifies (城管通)
    # Zhoushan's service team per grid (网格化管理、组团式服务).
    team_leader = "team_leader"  # 团队长
    community_cadre = "community_cadre"  # 社区干部
    police_officer = "police_officer"  # 民警
    doctor = "doctor"  # 医生
    teacher = "teacher"  # 教师
    lawyer = "lawyer"  # 律师
    team_member = "team_member"  # 其他团队成员


# At most one person in these roles per grid at a time.
SINGLE = frozenset({StaffRole.grid_manager, StaffRole.supervisor})
Outside = Literal["refuse", "flag"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StaffEntry(_Strict):
    id: StaffId
    name: Annotated[str, Field(min_length=1, max_length=100)]
    role: StaffRole
    grids: Annotated[list[GridCode], Field(min_length=1, max_length=500)]


class PatrolPolicy(_Strict):
    """`outside`: a clock-in or track point outside the patroller's grids is refused (422)
    or accepted and flagged (`outside: true`)."""

    outside: Outside = "refuse"


class StaffFile(_Strict):
    patrols: PatrolPolicy = PatrolPolicy()
    staff: Annotated[list[StaffEntry], Field(max_length=100_000)] = []


@dataclass(frozen=True)
class StaffRegister:
    """The loaded `staff.yaml`: the people by id, and the patrol policy."""

    people: Mapping[str, StaffEntry] = field(default_factory=dict)
    patrols: PatrolPolicy = field(default_factory=PatrolPolicy)

    def staff_of(self, grid: str) -> list[StaffEntry]:
        """Everyone working `grid`, by role then id."""
        found = [p for p in self.people.values() if grid in p.grids]
        return sorted(found, key=lambda p: (list(StaffRole).index(p.role), p.id))

    def grids_of(self, staff_id: str) -> list[str]:
        person = self.people.get(staff_id)
        return list(person.grids) if person is not None else []


def staff_problems(
    people: Iterable[StaffEntry], grids: Iterable[Grid]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Every problem of the register against the pack's grids, each as (where, what)."""
    by_code = {g.code: g for g in grids}
    found: list[tuple[tuple[str | int, ...], str]] = []
    seen: dict[str, int] = {}
    held: dict[tuple[str, StaffRole], str] = {}
    for i, person in enumerate(people):
        at: tuple[str | int, ...] = ("staff", i)
        if person.id in seen:
            found.append(((*at, "id"), f"{person.id} is already staff {seen[person.id]}"))
        seen.setdefault(person.id, i)
        for j, code in enumerate(person.grids):
            where = (*at, "grids", j)
            grid = by_code.get(code)
            if grid is None:
                found.append((where, f"unknown grid {code}"))
                continue
            if person.role in SINGLE and (code, person.role) in held:
                other = held[(code, person.role)]
                found.append((where, f"grid {code} already has {person.role.value} {other}"))
            if person.role is StaffRole.supervisor and grid.supervisor != person.id:
                named = grid.supervisor or "none"
                found.append((where, f"grid {code} names supervisor {named}, not {person.id}"))
                continue
            held.setdefault((code, person.role), person.id)
    found += _unlisted_supervisors(by_code.values(), held)
    return found


def _unlisted_supervisors(
    grids: Iterable[Grid], held: Mapping[tuple[str, StaffRole], str]
) -> list[tuple[tuple[str | int, ...], str]]:
    return [
        (("staff",), f"grid {g.code} names supervisor {g.supervisor}, who is not staff there")
        for g in grids
        if g.supervisor is not None and (g.code, StaffRole.supervisor) not in held
    ]


def load_staff(root: Path, grids: Iterable[Grid], errors: list[str]) -> StaffRegister | None:
    """`staff.yaml` of the pack at `root` (an empty register without one); every error is
    appended to `errors` as `staff.yaml:line: where: what`, and None returned when there was
    one."""
    path = root / STAFF_FILE
    if not path.exists():
        return StaffRegister()
    read = read_model(path, StaffFile, errors)
    if read is None:
        return None
    lines = yaml_lines(yaml.compose(path.read_text(encoding="utf-8")))
    found = [
        f"{STAFF_FILE}:{line_of(lines, where)}: {'.'.join(map(str, where))}: {what}"
        for where, what in staff_problems(read.staff, grids)
    ]
    errors.extend(found)
    if found:
        return None
    return StaffRegister({p.id: p for p in read.staff}, read.patrols)
