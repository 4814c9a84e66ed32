"""Maps drawn as inline SVG from grid polygons (the workbench's maps, the big screen's): no
tiles, no script library, nothing fetched from elsewhere, so a map works on a closed network.

Pure: a frame maps longitude and latitude onto the drawing (longitude scaled by the cosine
of the latitude, so a square of ground is square on the screen), and a grid becomes an SVG
path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from shapely.geometry import Polygon

Bounds = tuple[float, float, float, float]  # west, south, east, north


@dataclass(frozen=True)
class Frame:
    """Where the ground `bounds` lies on a drawing `width` pixels wide."""

    west: float
    south: float
    east: float
    north: float
    width: float

    @property
    def scale(self) -> float:
        """Pixels per degree of longitude; latitude's are those over the cosine."""
        return self.width / (self.east - self.west)

    @property
    def squash(self) -> float:
        return math.cos(math.radians((self.south + self.north) / 2))

    @property
    def height(self) -> float:
        return (self.north - self.south) * self.scale / self.squash

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (lon - self.west) * self.scale, (self.north - lat) * self.scale / self.squash


def frame(bounds: Iterable[Bounds], width: float = 720.0, margin: float = 0.08) -> Frame:
    """The frame holding every one of `bounds`, with a margin around."""
    wests, souths, easts, norths = zip(*bounds, strict=True)
    west, south, east, north = min(wests), min(souths), max(easts), max(norths)
    pad_x = max(east - west, 1e-4) * margin
    pad_y = max(north - south, 1e-4) * margin
    return Frame(west - pad_x, south - pad_y, east + pad_x, north + pad_y, width)


def path(f: Frame, polygon: Polygon) -> str:
    """The polygon (holes included) as an SVG path's `d`."""
    rings = [polygon.exterior, *polygon.interiors]
    parts = []
    for ring in rings:
        points = [f.xy(lon, lat) for lon, lat in ring.coords]
        parts.append("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points) + " Z")
    return " ".join(parts)
