"""The loaded city pack: `city.yaml` with a spatial index of the grids, the component
inventory, the routing (`routing.yaml`), the SLA policy (`sla.yaml`) and the evaluation
weights and grades (`evaluation.yaml`). Pure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry import Point, Polygon

from gridloop.citypack.evaluation import EvaluationPolicy
from gridloop.citypack.knowledge import KnowledgeBase
from gridloop.citypack.messages import MessagePolicy
from gridloop.citypack.model import CityFile, ComponentInstance, Grid
from gridloop.citypack.routing import Routing
from gridloop.citypack.sla import DEFAULT, SlaPolicy
from gridloop.citypack.staff import StaffEntry, StaffRegister


class CityPack:
    """The loaded pack. `routing` defaults to no location rules and the strict webhook
    policy, `sla` to timing the handling stage alone, `evaluation` to the default weights and
    grades, `knowledge` to none (a pack without those files)."""

    def __init__(
        self,
        city: CityFile,
        grids: list[tuple[Grid, Polygon]],
        components: Sequence[ComponentInstance] = (),
        routing: Routing | None = None,
        sla: SlaPolicy | None = None,
        evaluation: EvaluationPolicy | None = None,
        knowledge: KnowledgeBase | None = None,
        messages: MessagePolicy | None = None,
        staff: StaffRegister | None = None,
    ) -> None:
        self.city = city
        self.routing = routing if routing is not None else Routing()
        self.sla = sla if sla is not None else SlaPolicy(DEFAULT, city)
        self.evaluation = evaluation if evaluation is not None else EvaluationPolicy()
        # The knowledge base (知识库) hotline operators answer consultations from.
        self.knowledge = knowledge if knowledge is not None else KnowledgeBase()
        self.messages = messages  # None: reporters are told nothing (`messages.yaml`)
        # The grid's people (`staff.yaml`): none without the file.
        self.staff = staff if staff is not None else StaffRegister()
        self.components = {c.id: c for c in components}
        self.departments = {d.code: d for d in city.departments}
        self.classes = {(c.kind, c.code): c for c in city.classes}
        self.streets = {s.code: s for s in city.streets}
        self.majors = {(m.kind, m.code): m for m in city.majors}
        # Sorted by code: index order is code order, so the smallest index wins a tie.
        ordered = sorted(grids, key=lambda gp: gp[0].code)
        self.grids = [g for g, _ in ordered]
        self.grid_by_code = {g.code: g for g in self.grids}
        self._polygons = [p for _, p in ordered]
        self._polygon_by_code = {g.code: p for g, p in ordered}
        self._index = STRtree(self._polygons)

    def locate(self, lon: float, lat: float) -> Grid | None:
        """The grid containing the point (its interior or boundary). A point on a shared
        edge or vertex belongs to the grid with the smallest code, so the answer never
        depends on load order; a point in a hole belongs to no grid but one filling it."""
        hits = self._index.query(Point(lon, lat), predicate="intersects")
        return self.grids[int(hits.min())] if len(hits) else None

    def locate_many(self, lons: Sequence[float], lats: Sequence[float]) -> list[Grid | None]:
        """`locate` for many points at once (vectorised): the same answers, in order."""
        points = shapely.points(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        which, grid = self._index.query(points, predicate="intersects")
        best = np.full(len(points), len(self.grids), dtype=np.int64)
        np.minimum.at(best, which, grid)
        return [self.grids[i] if i < len(self.grids) else None for i in best.tolist()]

    def polygon(self, grid_code: str) -> Polygon:
        return self._polygon_by_code[grid_code]

    def component(self, component_id: str) -> ComponentInstance | None:
        return self.components.get(component_id)

    def supervised_by(self, supervisor: str) -> list[str]:
        """The codes of the grids this supervisor patrols."""
        return [g.code for g in self.grids if g.supervisor == supervisor]

    def staff_of(self, grid_code: str) -> list[StaffEntry]:
        """Who the pack says works this grid (the grid service's register starts here)."""
        return self.staff.staff_of(grid_code)

    def grids_of(self, staff_id: str) -> list[str]:
        """The codes of the grids the pack gives this person."""
        return self.staff.grids_of(staff_id)
