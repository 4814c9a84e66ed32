"""The patrol geofence on hand-built polygons: inside, outside, on the edge, and the pack's
two policies (refuse names the first point out; flag keeps every point with its flag)."""

from __future__ import annotations

import pytest
from shapely.geometry import Polygon

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.refusal import Refused
from services.grid.geofence import Located, fenced, outside

SQUARE = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
# A grid shaped like an L: the notch (0.5..1, 0.5..1) is outside.
ELL = Polygon([(0, 0), (1, 0), (1, 0.5), (0.5, 0.5), (0.5, 1), (0, 1)])


def test_inside_outside_and_the_edge() -> None:
    points = [Located(0.5, 0.5), Located(2, 2), Located(1, 0.3), Located(0, 0), Located(-0.01, 0.5)]
    assert outside(SQUARE, points) == [False, True, False, False, True]
    assert outside(SQUARE, []) == []


def test_a_concave_grid_fences_its_notch() -> None:
    assert outside(ELL, [Located(0.75, 0.75), Located(0.25, 0.75), Located(0.75, 0.25)]) == [
        True,
        False,
        False,
    ]


def test_refuse_names_the_first_point_out() -> None:
    points = [Located(0.5, 0.5), Located(3, 3), Located(4, 4)]
    with pytest.raises(Refused) as refused:
        fenced(SQUARE, points, "refuse", ("body", "points"))
    assert refused.value.loc == ("body", "points", "1")
    assert refused.value.code == "outside_grid"
    assert "2 point(s)" in refused.value.reason
    with pytest.raises(Refused) as one:
        fenced(SQUARE, [Located(3, 3)], "refuse", ("body", "point"))
    assert one.value.loc == ("body", "point")
    assert fenced(SQUARE, points[:1], "refuse", ("body", "points")) == [False]


def test_flag_keeps_every_point() -> None:
    assert fenced(SQUARE, [Located(0.5, 0.5), Located(3, 3)], "flag", ("body",)) == [False, True]


def test_the_demo_grids_fence_their_neighbours_out() -> None:
    pack = load_city_pack(DEMO_CITY_PACK)
    first, second = pack.grids[0].code, pack.grids[1].code
    inside_first = Located(116.4005, 39.9204)
    assert outside(pack.polygon(first), [inside_first]) == [False]
    assert outside(pack.polygon(second), [inside_first]) == [True]
