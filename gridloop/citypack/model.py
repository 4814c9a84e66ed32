"""The city pack's model: location hierarchy, catalogue, departments, grids. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from shapely import STRtree
from shapely.geometry import Point, Polygon

from schemas.events import Kind

Code3 = Annotated[str, Field(pattern=r"^\d{3}$")]


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


class Grid(_Strict):
    """A unit grid (单元网格): 14 digits (CJ/T 213) or 15 digits (GB/T 47678.3)."""

    code: Annotated[str, Field(pattern=r"^\d{14,15}$")]
    community: str
    name: str = ""

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

    format: Literal["gridloop-citypack/1"]
    name: str
    district: District
    streets: list[Street]
    communities: list[Community]
    departments: list[Department]
    classes: list[EventClass]


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
        self.grids = [g for g, _ in grids]
        self._polygons = [p for _, p in grids]
        self._index = STRtree(self._polygons)

    def locate(self, lon: float, lat: float) -> Grid | None:
        """The grid containing the point. A point on a shared edge belongs to the grid with
        the smallest code, so the answer never depends on load order."""
        point = Point(lon, lat)
        hits = self._index.query(point, predicate="intersects")
        candidates = sorted((self.grids[i] for i in hits), key=lambda g: g.code)
        return candidates[0] if candidates else None
