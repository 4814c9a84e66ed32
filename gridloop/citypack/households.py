"""The building and household register (楼栋户籍) — the pack's `households.csv` (optional):
one row per door of a grid, with its occupancy, Yichang's colour classes (owner-occupied,
rented, office, vacant). Pure.

    grid,building,door,occupancy
    110101001001001,多福巷 3号楼,1-101,owner_occupied
    110101001001001,多福巷 3号楼,1-102,出租

Occupancy may be written in Chinese (自住, 出租, 办公, 空置). A `name` column (the household's
contact, 户主) is read only when `city.yaml` turns names on (`households: {names: true}`);
otherwise a row that names someone is an error: the register keeps no personal data unless
the city decides it needs it (docs/personal-data.md).

Every error of the file is listed at load, each with its line: a missing column, an unknown
grid, a door listed twice in one building of one grid, a bad occupancy, an empty building or
door, a name where names are off. The register seeds the grid service (services/grid), whose
API changes it afterwards.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridloop.citypack.errors import loc_text
from gridloop.citypack.model import Grid

HOUSEHOLDS_FILE = "households.csv"
HOUSEHOLD_COLUMNS = ("grid", "building", "door", "occupancy")


class Occupancy(StrEnum):
    """How a door is used: Yichang's colour classes of the household register."""

    owner_occupied = "owner_occupied"  # 自住
    rented = "rented"  # 出租
    office = "office"  # 办公
    vacant = "vacant"  # 空置


OCCUPANCY_NAMES = {"自住": "owner_occupied", "出租": "rented", "办公": "office", "空置": "vacant"}
Building = Annotated[str, Field(min_length=1, max_length=60)]
Door = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[^\s/]+$")]
HouseholdName = Annotated[str, Field(min_length=1, max_length=100)]
GridCode = Annotated[str, Field(pattern=r"^\d{14,15}$")]


class HouseholdEntry(BaseModel):
    """One door of the register, as the pack lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    grid: GridCode
    building: Building
    door: Door
    occupancy: Occupancy
    name: HouseholdName | None = None  # only where the pack turns names on

    @property
    def id(self) -> str:
        return household_id(self.grid, self.building, self.door)


def household_id(grid: str, building: str, door: str) -> str:
    """A pack household's id: derived from where it is, so it is the same at every load (a
    visit names households by id, never by a door that might be renumbered)."""
    digest = hashlib.sha256(f"{grid}\n{building}\n{door}".encode()).hexdigest()
    return f"hh_{digest[:16]}"


@dataclass(frozen=True)
class HouseholdRegister:
    """The loaded `households.csv`: the doors by grid, and whether names are kept."""

    by_grid: Mapping[str, tuple[HouseholdEntry, ...]] = field(default_factory=dict)
    names: bool = False

    def of(self, grid: str) -> tuple[HouseholdEntry, ...]:
        return self.by_grid.get(grid, ())

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_grid.values())


def load_households(
    root: Path, grids: Iterable[Grid], names: bool, errors: list[str]
) -> HouseholdRegister | None:
    """`households.csv` of the pack at `root` (an empty register without one); every error
    is appended to `errors` as `households.csv:line: what`, and None returned when there
    was one."""
    path = root / HOUSEHOLDS_FILE
    if not path.exists():
        return HouseholdRegister(names=names)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        errors.append(f"{HOUSEHOLDS_FILE}: cannot read: {exc}")
        return None
    found: list[str] = []
    rows = list(_entries(text, names, found))
    found += household_problems(rows, {g.code for g in grids})
    errors.extend(found)
    if found:
        return None
    by_grid: dict[str, list[HouseholdEntry]] = {}
    for _, entry in rows:
        by_grid.setdefault(entry.grid, []).append(entry)
    return HouseholdRegister({g: tuple(v) for g, v in by_grid.items()}, names)


def household_problems(rows: Iterable[tuple[int, HouseholdEntry]], grids: set[str]) -> list[str]:
    """Every problem across rows: an unknown grid, a door listed twice."""
    found: list[str] = []
    seen: dict[tuple[str, str, str], int] = {}
    for line, e in rows:
        if e.grid not in grids:
            found.append(f"{HOUSEHOLDS_FILE}:{line}: unknown grid {e.grid}")
        where = (e.grid, e.building, e.door)
        if where in seen:
            found.append(
                f"{HOUSEHOLDS_FILE}:{line}: door {e.door} of {e.building} in grid {e.grid} "
                f"is listed twice (first on line {seen[where]})"
            )
        seen.setdefault(where, line)
    return found


def _entries(text: str, names: bool, errors: list[str]) -> Iterator[tuple[int, HouseholdEntry]]:
    """Each valid row with its line; each invalid one's errors appended to `errors`."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if missing := [c for c in HOUSEHOLD_COLUMNS if c not in header]:
        errors.append(f"{HOUSEHOLDS_FILE}:1: missing column(s): {', '.join(missing)}")
        return
    for row in _rows(reader):
        line = reader.line_num
        if None in row:
            errors.append(f"{HOUSEHOLDS_FILE}:{line}: more fields than columns")
            continue
        fields = {k: v.strip() for k, v in row.items() if k and v is not None and v.strip()}
        if fields.get("occupancy") in OCCUPANCY_NAMES:
            fields["occupancy"] = OCCUPANCY_NAMES[fields["occupancy"]]
        if "name" in fields and not names:
            errors.append(
                f"{HOUSEHOLDS_FILE}:{line}: name: names are off (city.yaml households.names: "
                "false): the register keeps no names unless the city turns them on"
            )
            continue
        try:
            yield line, HouseholdEntry.model_validate(fields)
        except ValidationError as exc:
            errors.extend(
                f"{HOUSEHOLDS_FILE}:{line}: {loc_text(e['loc'])}: {e['msg']}" for e in exc.errors()
            )


def _rows(reader: csv.DictReader[str]) -> Iterator[dict[str | Any, str | Any]]:
    yield from reader
