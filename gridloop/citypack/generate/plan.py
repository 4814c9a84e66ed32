"""The plan of a generated district: its cells cut into streets (the cells nearest each
street's centre) and communities (compact pieces of a street), then coded: community
`street 3 + 3`, grid `district 6 + street 3 + community 3 + grid 3` (GB/T 47678.3, 15
digits), numbered north to south, west to east. Supervisors patrol runs of grids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridloop.citypack.generate.catalogue import Catalogue, StreetSpec
from gridloop.citypack.generate.geometry import Cells, Ints, contiguous, fit_cells, nearest, split


@dataclass(frozen=True)
class CommunityPlan:
    code: str  # street 3 + community 3
    name: str


@dataclass(frozen=True)
class GridPlan:
    code: str
    community: CommunityPlan
    name: str
    supervisor: str
    # The cell's bounds in degrees, as written: west, south, east, north.
    bounds: tuple[float, float, float, float]

    @property
    def street(self) -> str:
        return self.community.code[:3]


@dataclass(frozen=True)
class DistrictPlan:
    cells: Cells
    communities: list[CommunityPlan]
    grids: list[GridPlan]  # in code order


def plan_district(
    catalogue: Catalogue, grids: int, communities: int, rng: np.random.Generator
) -> DistrictPlan:
    cells = fit_cells(catalogue.outline, catalogue.size.cell_m, grids)
    street = _streets(catalogue, cells)
    community = _communities(cells, street, communities, rng)
    return _code(catalogue, cells, street, community)


def _streets(catalogue: Catalogue, cells: Cells) -> Ints:
    xs, ys = cells.centres()
    seeds = np.array([cells.frame.metres(*s.centre) for s in catalogue.streets])
    return contiguous(cells, nearest(xs, ys, seeds))


def _communities(cells: Cells, street: Ints, wanted: int, rng: np.random.Generator) -> Ints:
    """Global community labels: each street gets a share of `wanted` by its number of cells
    (largest remainder, at least one), cut into compact contiguous pieces."""
    names, sizes = np.unique(street, return_counts=True)
    quota = sizes * wanted / sizes.sum()
    shares = np.maximum(np.floor(quota).astype(np.int64), 1)
    for k in np.argsort(-(quota - np.floor(quota)), kind="stable"):
        if shares.sum() >= wanted:
            break
        shares[k] += 1
    xs, ys = cells.centres()
    labels = np.zeros(len(cells), dtype=np.int64)
    offset = 0
    for name, share in zip(names.tolist(), shares.tolist(), strict=True):
        members = np.flatnonzero(street == name)
        labels[members] = offset + split(xs[members], ys[members], share, rng)
        offset += share
    return contiguous(cells, labels, within=street)


def _code(catalogue: Catalogue, cells: Cells, street: Ints, community: Ints) -> DistrictPlan:
    communities: list[CommunityPlan] = []
    grids: list[GridPlan] = []
    for s, spec in enumerate(catalogue.streets):
        street_grids = _street_grids(spec, cells, community, community[street == s])
        communities.extend(dict.fromkeys(plan for plan, _, _ in street_grids))
        # Supervisors patrol runs of grids of one street, numbered across the district.
        per = catalogue.size.grids_per_supervisor
        first = len({g.supervisor for g in grids})
        grids.extend(
            GridPlan(
                code=f"{catalogue.district['code']}{plan.code}{serial:03d}",
                community=plan,
                name=f"{plan.name.split()[0]} 网格{serial:03d}",
                supervisor=f"SUP-{first + n // per + 1:04d}",
                bounds=_bounds(cells, k),
            )
            for n, (plan, serial, k) in enumerate(street_grids)
        )
    return DistrictPlan(cells, communities, grids)


def _street_grids(
    spec: StreetSpec, cells: Cells, community: Ints, mine: Ints
) -> list[tuple[CommunityPlan, int, int]]:
    """The grids of one street as (community, serial, cell): communities numbered by their
    centre, north to south, then west to east; grids in cell order (the same)."""
    xs, ys = cells.centres()
    labels = [int(c) for c in np.unique(mine)]
    labels.sort(key=lambda c: (-ys[community == c].mean(), xs[community == c].mean()))
    found: list[tuple[CommunityPlan, int, int]] = []
    for n, label in enumerate(labels, start=1):
        name = f"{spec.name.removesuffix('街道')}第{n}社区 {spec.en} {n}"
        plan = CommunityPlan(f"{spec.code}{n:03d}", name)
        members = np.flatnonzero(community == label).tolist()
        found.extend((plan, serial, k) for serial, k in enumerate(members, start=1))
    return found


def _bounds(cells: Cells, k: int) -> tuple[float, float, float, float]:
    size = cells.size_m
    west, south = cells.frame.degrees(int(cells.i[k]) * size, int(cells.j[k]) * size)
    east, north = cells.frame.degrees((int(cells.i[k]) + 1) * size, (int(cells.j[k]) + 1) * size)
    return west, south, east, north
