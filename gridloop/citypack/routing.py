"""The city pack's command-axis data (`routing.yaml`, optional): location rules of ownership
and the policy for department webhooks. Pure, apart from `load_routing` reading the file.

A location rule says that in an area — a park, a river bank — problems of some classes (or
of every class) belong to a body, whatever the class's default owner, optionally with
departments that assist it (a joint case, 联合处置). Where rules overlap, the smallest area
is the most specific and wins; equal areas fall back to the rule's name, so the answer never
depends on the order of the file.
"""

from __future__ import annotations

from collections.abc import Container
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from shapely import STRtree
from shapely.geometry import MultiPolygon, Point, Polygon, shape

from gridloop.citypack.errors import read_model

ROUTING_FILE = "routing.yaml"
ClassRef = Annotated[str, Field(pattern=r"^(component|event):\d{4,5}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocationRule(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    owner: str  # the department that owns problems in the area
    assisting: list[str] = []
    # `kind:code` of the classes the rule covers, e.g. `event:0102`; empty: every class.
    classes: list[ClassRef] = []
    geometry: dict[str, Any]  # a GeoJSON Polygon or MultiPolygon

    @field_validator("geometry")
    @classmethod
    def _a_valid_area(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            area = shape(value)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a GeoJSON geometry: {exc}") from exc
        if not isinstance(area, Polygon | MultiPolygon) or not area.is_valid or area.is_empty:
            raise ValueError("must be a valid Polygon or MultiPolygon")
        return value

    def covers(self, kind: str, class_code: str) -> bool:
        return not self.classes or f"{kind}:{class_code}" in self.classes


class WebhookPolicy(_Strict):
    # Private, loopback and link-local webhook addresses are refused (server-side request
    # forgery) unless the city allows them, as the embedded demo must.
    allow_private_addresses: bool = False


class RoutingFile(_Strict):
    format: Literal["gridloop-routing/1"]
    location_rules: list[LocationRule] = []
    webhooks: WebhookPolicy = WebhookPolicy()


class Routing:
    """The loaded location rules with a spatial index, and the webhook policy."""

    def __init__(
        self, rules: list[LocationRule] | None = None, webhooks: WebhookPolicy | None = None
    ) -> None:
        self.rules = list(rules or [])
        self.webhooks = webhooks or WebhookPolicy()
        self._areas = [shape(r.geometry) for r in self.rules]
        self._index = STRtree(self._areas)

    def match(
        self,
        lon: float,
        lat: float,
        kind: str,
        class_code: str,
        owners: Container[str] | None = None,
    ) -> LocationRule | None:
        """The most specific rule whose area contains the point and that covers the class;
        with `owners`, only rules whose owner is one of them."""
        point = Point(lon, lat)
        hits = [
            int(i)
            for i in self._index.query(point, predicate="intersects")
            if self.rules[int(i)].covers(kind, class_code)
            and (owners is None or self.rules[int(i)].owner in owners)
        ]
        if not hits:
            return None
        best = min(hits, key=lambda i: (self._areas[i].area, self.rules[i].name))
        return self.rules[best]


def load_routing(root: Path, departments: set[str] | None, errors: list[str]) -> Routing:
    """`routing.yaml` of the pack at `root` if it is there (else no location rules and the
    strict webhook policy); its departments are checked when `departments` is known. Every
    error is appended to `errors`."""
    path = root / ROUTING_FILE
    if not path.exists():
        return Routing()
    parsed = read_model(path, RoutingFile, errors)
    if parsed is None:
        return Routing()
    names: set[str] = set()
    for n, rule in enumerate(parsed.location_rules):
        where = f"{ROUTING_FILE}: location_rules.{n} ({rule.name})"
        if rule.name in names:
            errors.append(f"{where}: duplicate name")
        names.add(rule.name)
        for code in (rule.owner, *rule.assisting):
            if departments is not None and code not in departments:
                errors.append(f"{where}: unknown department {code}")
        if rule.owner in rule.assisting:
            errors.append(f"{where}: the owner {rule.owner} cannot also assist")
    return Routing(parsed.location_rules, parsed.webhooks)
