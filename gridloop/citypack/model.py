"""The city pack's model: location hierarchy, catalogue, departments, grids, component
inventory. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Literal

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from shapely import STRtree
from shapely.geometry import Point, Polygon

from schemas.events import Kind

Code3 = Annotated[str, Field(pattern=r"^\d{3}$")]
# The format versions this code reads. 2 adds, all optional: components.csv, `majors`,
# `timezone`, `intake`, a class's duplicate radius and window, a grid's supervisor.
FORMATS = ("gridloop-citypack/1", "gridloop-citypack/2")
Format = Literal["gridloop-citypack/1", "gridloop-citypack/2"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class District(_Strict):
    code: Annotated[str, Field(pattern=r"^\d{6}$")]  # GB/T 2260
    name: str


class Street(_Strict):
    code: Code3
    name: str
    office: str  # the street office: owner of last resort (属地兜底)


class Community(_Strict):
    code: Annotated[str, Field(pattern=r"^\d{6}$")]  # street (3) + community (3)
    name: str


class Webhook(_Strict):
    url: HttpUrl
    secret: Annotated[str, Field(pattern=r"^whsec_[A-Za-z0-9+/=]{16,}$")]


class Department(_Strict):
    code: Annotated[str, Field(pattern=r"^[A-Z0-9-]{2,32}$")]
    name: str
    webhook: Webhook | None = None


class EventClass(_Strict):
    """A component class (部件) or event class (事件) of the catalogue."""

    code: Annotated[str, Field(pattern=r"^\d{4,5}$")]  # major 2 + minor 2 or 3
    kind: Kind
    name: str
    owner: str  # default owner department
    handle_limit: timedelta
    clock: Literal["working", "natural"] = "working"
    # Duplicates (重复上报): a report of this class within this distance and time of an open
    # case is merged into it.
    duplicate_radius_m: Annotated[float, Field(ge=0, le=5000)] = 50.0
    duplicate_window: timedelta = timedelta(days=3)

    @property
    def major(self) -> str:
        return self.code[:2]


class Major(_Strict):
    """A major class (大类): 01 公用设施, 02 道路交通, … for components; 01 市容环境, … for
    events. Groups the catalogue (Open311 `group`)."""

    kind: Kind
    code: Annotated[str, Field(pattern=r"^\d{2}$")]
    name: str


class IntakePolicy(_Strict):
    """How the supervision centre runs intake."""

    # File supervisor reports and confirmed citizen reports at once (by rule), or leave each
    # to a supervision-centre operator (POST /cases/{id}/file or /void).
    auto_file: bool = True
    # A citizen report becomes a verification task (核实) due within this time.
    verify_limit: timedelta = timedelta(hours=2)


class Grid(_Strict):
    """A unit grid (单元网格): 14 digits (CJ/T 213) or 15 digits (GB/T 47678.3)."""

    code: Annotated[str, Field(pattern=r"^\d{14,15}$")]
    community: str
    name: str = ""
    supervisor: Annotated[str | None, Field(min_length=1, max_length=64)] = None  # 监督员

    @property
    def street(self) -> str:
        return self.code[6:9]


class ComponentInstance(_Strict):
    """A coded city component (部件) of the inventory: 16 digits (CJ/T 214: admin 6 + major 2
    + minor 2 + serial 6) or 17 (GB/T 47678.5: minor of 3 digits)."""

    id: Annotated[str, Field(pattern=r"^\d{16,17}$")]
    class_code: Annotated[str, Field(pattern=r"^\d{4,5}$")]
    name: str
    lon: float
    lat: float
    grid: Annotated[str, Field(pattern=r"^\d{14,15}$")]
    owner: str  # 权属单位
    maintainer: str  # 养护单位
    status: Literal["intact", "damaged", "lost", "abandoned", "removed"] = "intact"


class CityFile(_Strict):
    """`city.yaml`: everything but the grid polygons."""

    format: Format
    name: str
    district: District
    timezone: str = "Asia/Shanghai"  # case numbers are dated in the city's time
    streets: list[Street]
    communities: list[Community]
    departments: list[Department]
    majors: list[Major] = Field(default_factory=list)
    classes: list[EventClass]
    intake: IntakePolicy = Field(default_factory=IntakePolicy)


class CityPack:
    """The loaded pack, with a spatial index of the grids."""

    def __init__(
        self,
        city: CityFile,
        grids: list[tuple[Grid, Polygon]],
        components: Sequence[ComponentInstance] = (),
    ) -> None:
        self.city = city
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
