"""The grid service's layer between the routes and the store: the pack, the store, the
producer and the clock, built once by `main.py`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from gridloop.auth import Principal
from gridloop.citypack import CityPack
from gridloop.kafka import EventProducer
from gridloop.refusal import not_found
from schemas import clock
from services.grid.access import oversees, own_grid
from services.grid.register import Spell, covering
from services.grid.store import GridStore

SOURCE = "/gridloop/grid"
Clock = Callable[[], datetime]


class GridService:
    def __init__(
        self, pack: CityPack, store: GridStore, producer: EventProducer, now: Clock = clock.now
    ) -> None:
        self.pack, self.store, self.producer, self.now = pack, store, producer, now

    async def may_see(self, who: Principal, grid: str) -> None:
        """Refuse an unknown grid (404) and a grid person's look at another grid (403)."""
        if grid not in self.pack.grid_by_code:
            raise not_found(("path", "grid"), f"no grid {grid} in the city pack")
        if not oversees(who):
            own_grid(who, grid, await self.store.grids_of(who.subject))

    async def staff(self, who: Principal, grid: str, at: datetime | None) -> list[Spell]:
        """Who works `grid` now, or worked it at `at`."""
        await self.may_see(who, grid)
        head = await self.store.head(grid)
        return covering(head.spells if head is not None else [], at)
