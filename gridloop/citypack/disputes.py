"""Disputes (矛盾纠纷) in a city pack: the `disputes` block of `sla.yaml`. Pure once loaded.

A dispute is owned by a tier office, not a department: its grid mediates first; what the
grid cannot resolve in its limit, or what is beyond its authority, goes up tier by tier
(grid → community → street → district, → city where the ladder says so: Zhoushan), each
tier with its own limit on the pack's clock (working time by default).

    ladder = pack.sla.disputes            # None: the city takes no disputes
    ladder.limit("community")             # clock time the community has
    ladder.above("grid")                  # "community" (None at the top)
    ladder.deadline("grid", since)        # when the grid's time is up
    office_code("street", grid_code)      # "001": who acts for the tier (Role.tier_office)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gridloop.calendar import Clock
from schemas.events import DisputeTier

DISPUTE_TIERS: tuple[DisputeTier, ...] = ("grid", "community", "street", "district", "city")
CITY = "city"


class TierLimit(BaseModel):
    """One tier of the ladder and the time it has to resolve a dispute."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tier: DisputeTier
    limit: timedelta


class DisputesFile(BaseModel):
    """`sla.yaml` `disputes`: the types of dispute a report may name (its class code), the
    clock, and the ladder from the grid up."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    clock: Literal["working", "natural"] = "working"
    types: Annotated[dict[Annotated[str, Field(pattern=r"^\d{4,5}$")], str], Field(min_length=1)]
    tiers: Annotated[list[TierLimit], Field(min_length=1)]


def dispute_problems(file: DisputesFile, where: str) -> list[str]:
    """Every error of the block (`where`: how the file names it), listed."""
    errors = []
    tiers = [t.tier for t in file.tiers]
    if tiers[0] != "grid":
        errors.append(f"{where}.tiers.0.tier: the grid mediates first, not the {tiers[0]}")
    if tiers != sorted(tiers, key=DISPUTE_TIERS.index) or len(set(tiers)) != len(tiers):
        errors.append(f"{where}.tiers: tiers must go up (grid, community, street, …), each once")
    for n, rung in enumerate(file.tiers):
        if rung.limit <= timedelta(0):
            errors.append(f"{where}.tiers.{n}.limit: must be positive, not {rung.limit}")
    for code, name in file.types.items():
        if not name.strip():
            errors.append(f"{where}.types.{code}: needs a name")
    return errors


class DisputeLadder:
    """The loaded ladder: limits as clock time on the pack's clock."""

    def __init__(self, file: DisputesFile, measure: Clock) -> None:
        self.file, self.measure = file, measure
        self.types = dict(file.types)
        self.tiers: tuple[DisputeTier, ...] = tuple(t.tier for t in file.tiers)
        self._limits = {t.tier: measure.working(t.limit) for t in file.tiers}

    def limit(self, tier: DisputeTier) -> timedelta | None:
        return self._limits.get(tier)

    def above(self, tier: DisputeTier) -> DisputeTier | None:
        """The next tier up the ladder, None at its top (or for a tier not on it)."""
        if tier not in self.tiers:
            return None
        at = self.tiers.index(tier)
        return self.tiers[at + 1] if at + 1 < len(self.tiers) else None

    def deadline(self, tier: DisputeTier, since: datetime) -> tuple[datetime, tuple[int, ...]]:
        """When a tier that took the dispute `since` is overdue, and the calendar years on
        the way nobody supplied (reckoned on weekends alone)."""
        limit = self._limits[tier]
        due = self.measure.add(since, limit)
        return due, tuple(sorted(self.measure.assumed_years(since, due)))


def office_code(tier: DisputeTier, grid_code: str) -> str:
    """Who acts for `tier` on a dispute in `grid_code`: the subject of its `tier_office`
    credential (the grid's own code for the grid tier, until its staff register decides)."""
    if tier == "grid":
        return grid_code
    if tier == "community":
        return grid_code[6:12]  # street (3) + community (3), as city.yaml codes communities
    if tier == "street":
        return grid_code[6:9]
    if tier == "district":
        return grid_code[:6]
    return CITY
