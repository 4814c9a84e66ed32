"""What a service built before serving is kept out of the collector's passes."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gridloop.runtime import settle_memory


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_objects_built_before_serving_are_frozen_and_later_ones_collected(
    collector: None,
) -> None:
    built = [{"grid": n} for n in range(1000)]  # as a pack's objects, alive for ever
    settle_memory()
    assert gc.get_freeze_count() >= len(built)
    assert gc.get_threshold()[0] > 700  # requests' objects are not promoted at once

    class Cycle:
        me: object

    later = Cycle()
    later.me = later  # cyclic garbage made while serving is still collected
    alive = weakref.ref(later)
    del later
    assert alive() is not None  # a cycle: only the collector frees it
    gc.collect()
    assert alive() is None
