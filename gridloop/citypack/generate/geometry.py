"""The geometry of a generated district: a local metric frame, the outline scaled so that
the wanted number of square cells fits, and the cells cut into contiguous regions (streets,
then communities). Pure: numpy and shapely, no files."""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import Polygon

# Metres in one degree of latitude on the sphere of mean radius 6,371,008.8 m; a degree of
# longitude is this times cos(latitude). Good to 0.5 % over a district.
M_PER_DEG = 111_195.08
Ints = NDArray[np.int64]
Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Frame:
    """Metres east and north of an origin (the outline's centroid). Real positions are
    scaled about the origin by `scale`, so that a district of any size takes the wanted
    number of cells; cells are laid in the scaled frame."""

    lon0: float
    lat0: float
    scale: float = 1.0

    @property
    def m_per_deg_lon(self) -> float:
        return M_PER_DEG * math.cos(math.radians(self.lat0))

    def metres(self, lon: float, lat: float) -> tuple[float, float]:
        """A real position, scaled, in the frame."""
        return (
            (lon - self.lon0) * self.m_per_deg_lon * self.scale,
            (lat - self.lat0) * M_PER_DEG * self.scale,
        )

    def degrees(self, x: float, y: float) -> tuple[float, float]:
        """A position of the frame as lon/lat, rounded to 1e-7° (1 cm), so that the corner
        two cells share is written the same in both."""
        return (
            round(self.lon0 + x / self.m_per_deg_lon, 7),
            round(self.lat0 + y / M_PER_DEG, 7),
        )


@dataclass(frozen=True)
class Cells:
    """The cells of the district: cell n covers [i·c, (i+1)·c] × [j·c, (j+1)·c] metres."""

    frame: Frame
    size_m: float
    i: Ints
    j: Ints

    def __len__(self) -> int:
        return len(self.i)

    def centres(self) -> tuple[Floats, Floats]:
        xs = (self.i + 0.5) * self.size_m
        ys = (self.j + 0.5) * self.size_m
        return xs.astype(np.float64), ys.astype(np.float64)


def frame_of(outline: Sequence[tuple[float, float]]) -> Frame:
    centroid = Polygon(outline).centroid
    return Frame(float(centroid.x), float(centroid.y))


def cells_within(outline: Sequence[tuple[float, float]], frame: Frame, size_m: float) -> Cells:
    """The cells whose centre lies in the outline (scaled by the frame): a staircase edge,
    every cell whole, so every grid has the same area."""
    area = Polygon([frame.metres(lon, lat) for lon, lat in outline])
    x0, y0, x1, y1 = area.bounds
    columns, rows = np.meshgrid(
        np.arange(math.floor(x0 / size_m), math.ceil(x1 / size_m), dtype=np.int64),
        np.arange(math.floor(y0 / size_m), math.ceil(y1 / size_m), dtype=np.int64),
    )
    i, j = columns.ravel(), rows.ravel()
    inside = shapely.contains_xy(area, (i + 0.5) * size_m, (j + 0.5) * size_m)
    # North to south, then west to east: the order grids are numbered in.
    order = np.lexsort((i[inside], -j[inside]))
    return Cells(frame, size_m, i[inside][order], j[inside][order])


def fit_cells(outline: Sequence[tuple[float, float]], size_m: float, wanted: int) -> Cells:
    """The cells of the outline scaled so that their number is as near `wanted` as a scale
    can make it (bisection on the scale: the count grows with it, in steps)."""
    base = frame_of(outline)

    def at(scale: float) -> Cells:
        return cells_within(outline, Frame(base.lon0, base.lat0, scale), size_m)

    low, high = 0.0, 1.0
    while len(at(high)) < wanted:
        low, high = high, high * 2
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if len(at(middle)) < wanted else (low, middle)
    under, over = at(low), at(high)
    return under if wanted - len(under) < len(over) - wanted else over


def nearest(xs: Floats, ys: Floats, seeds: Floats) -> Ints:
    """The index of the seed nearest each point (ties: the first seed)."""
    d = (xs[:, None] - seeds[None, :, 0]) ** 2 + (ys[:, None] - seeds[None, :, 1]) ** 2
    found: Ints = np.argmin(d, axis=1).astype(np.int64)
    return found


def split(xs: Floats, ys: Floats, parts: int, rng: np.random.Generator) -> Ints:
    """Cut points into `parts` compact regions of similar size: seeds spread by
    farthest-point sampling from a random start, then a few Lloyd (k-means) steps."""
    count = len(xs)
    parts = min(parts, count)
    points = np.column_stack([xs, ys])
    chosen = [int(rng.integers(count))]
    gap = np.hypot(xs - xs[chosen[0]], ys - ys[chosen[0]])
    for _ in range(parts - 1):
        chosen.append(int(np.argmax(gap)))
        gap = np.minimum(gap, np.hypot(xs - xs[chosen[-1]], ys - ys[chosen[-1]]))
    seeds = points[chosen]
    labels = nearest(xs, ys, seeds)
    for _ in range(12):
        sizes = np.bincount(labels, minlength=parts)
        if (sizes == 0).any():
            break
        sums = np.column_stack(
            [np.bincount(labels, xs, minlength=parts), np.bincount(labels, ys, minlength=parts)]
        )
        moved = nearest(xs, ys, sums / sizes[:, None])
        if (np.bincount(moved, minlength=parts) == 0).any():
            break  # a region would vanish: keep the previous cut
        labels = moved
    return labels


def contiguous(cells: Cells, labels: Ints, within: Ints | None = None) -> Ints:
    """Labels changed so that every region is one piece (4-neighbour): a stray piece joins
    the neighbouring region it touches most, among the cells of the same `within` group
    (e.g. the street of a community). The largest piece of each region stays."""
    labels = labels.copy()
    groups = within if within is not None else np.zeros(len(cells), dtype=np.int64)
    at = {(int(a), int(b)): n for n, (a, b) in enumerate(zip(cells.i, cells.j, strict=True))}
    neighbours = [
        [
            at[k]
            for k in ((a + 1, b), (a - 1, b), (a, b + 1), (a, b - 1))
            if k in at and groups[at[k]] == groups[n]
        ]
        for n, (a, b) in enumerate(zip(cells.i.tolist(), cells.j.tolist(), strict=True))
    ]
    for _ in range(len(cells)):
        if not _merge_one_stray_piece(labels, neighbours):
            break
    return labels


def _merge_one_stray_piece(labels: Ints, neighbours: list[list[int]]) -> bool:
    for label in np.unique(labels).tolist():
        pieces = _pieces(np.flatnonzero(labels == label).tolist(), neighbours, labels)
        if len(pieces) < 2:
            continue
        for piece in sorted(pieces, key=lambda p: (len(p), -min(p)))[:-1]:
            touching = Counter(
                int(labels[m]) for n in piece for m in neighbours[n] if labels[m] != label
            )
            if touching:
                best = min(touching, key=lambda k: (-touching[k], k))
                labels[piece] = best
                return True
    return False


def _pieces(members: list[int], neighbours: list[list[int]], labels: Ints) -> list[list[int]]:
    """The connected pieces of one region."""
    left = set(members)
    pieces = []
    while left:
        start = min(left)
        left.discard(start)
        piece, queue = [start], deque([start])
        while queue:
            for m in neighbours[queue.popleft()]:
                if m in left and labels[m] == labels[start]:
                    left.discard(m)
                    piece.append(m)
                    queue.append(m)
        pieces.append(sorted(piece))
    return pieces
