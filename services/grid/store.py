"""The grid service's MongoDB: one head per grid (`grid_heads`) holding the grid's staff
spells — open and closed, so its history — with a revision for conditional claims and an
outbox of events claimed but not yet published.

The pack seeds a grid's head once (`seed`): a grid with a head keeps it, so a restart never
undoes what the API changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from gridloop.citypack import CityPack
from gridloop.citypack.staff import StaffRole
from gridloop.mongo import Document
from services.grid.register import Spell


@dataclass
class GridHead:
    """A grid's register as stored: its spells, revision and outbox."""

    grid: str
    rev: int = 0
    spells: list[Spell] = field(default_factory=list)
    outbox: list[Document] = field(default_factory=list)
    # The answers given under Idempotency-Keys: {key, request (a digest), status, body}.
    answers: list[Document] = field(default_factory=list)


def spell_doc(s: Spell) -> Document:
    return {
        "id": s.id,
        "staff": s.staff,
        "name": s.name,
        "role": s.role.value,
        "since": s.since,
        "until": s.until,
    }


def spell_of(d: Document) -> Spell:
    return Spell(d["id"], d["staff"], d["name"], StaffRole(d["role"]), d["since"], d["until"])


def seeded_spells(pack: CityPack, grid: str) -> list[Spell]:
    """The pack's people of `grid` as its first spells (from the pack's start)."""
    return [Spell(f"pack:{p.id}:{p.role.value}", p.id, p.name, p.role) for p in pack.staff_of(grid)]


KEPT_ANSWERS = 100  # Idempotency-Keys remembered per grid (a register changes rarely)


class GridStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.heads = db["grid_heads"]

    async def create_indexes(self) -> None:
        await self.heads.create_index("spells.staff")

    async def seed(self, pack: CityPack) -> int:
        """A head for each grid of the pack that has none; how many were made."""
        made = 0
        for grid in pack.grids:
            doc = {"_id": grid.code, "rev": 0, "outbox": []}
            doc["spells"] = [spell_doc(s) for s in seeded_spells(pack, grid.code)]
            try:
                await self.heads.insert_one(doc)
                made += 1
            except DuplicateKeyError:  # seeded before (or by another instance)
                continue
        return made

    async def head(self, grid: str) -> GridHead | None:
        doc = await self.heads.find_one({"_id": grid})
        return _head(doc) if doc is not None else None

    async def claim(
        self, head: GridHead, spells: list[Spell], outbox: list[Document], answer: Document | None
    ) -> bool:
        """The next revision of `head`'s grid, if it is still the one decided on and its
        outbox is empty: the spells, the events to publish and the answer, in one write."""
        answers = [*head.answers, answer][-KEPT_ANSWERS:] if answer else head.answers
        changed = {
            "rev": head.rev + 1,
            "spells": [spell_doc(s) for s in spells],
            "outbox": outbox,
            "answers": answers,
        }
        done = await self.heads.update_one(
            {"_id": head.grid, "rev": head.rev, "outbox": []}, {"$set": changed}
        )
        return done.modified_count == 1

    async def clear_outbox(self, grid: str, rev: int) -> None:
        """The outbox of revision `rev` is on the log."""
        await self.heads.update_one({"_id": grid, "rev": rev}, {"$set": {"outbox": []}})

    async def grids_of(self, staff: str, roles: Iterable[StaffRole] | None = None) -> list[str]:
        """The grids `staff` works now (in any of `roles`, when given), by code."""
        match: dict[str, Any] = {"staff": staff, "until": None}
        if roles is not None:
            match["role"] = {"$in": [r.value for r in roles]}
        cursor = self.heads.find({"spells": {"$elemMatch": match}}, {"_id": 1})
        return sorted([d["_id"] async for d in cursor])


def _head(doc: Document) -> GridHead:
    spells = [spell_of(d) for d in doc.get("spells", [])]
    outbox, answers = list(doc.get("outbox", [])), list(doc.get("answers", []))
    return GridHead(doc["_id"], doc["rev"], spells, outbox, answers)
