"""The race test runs last.

It writes ≈ 10,000 records to the topics every test shares, and tests that read those
topics from the start with a group of their own (test_dispatch_api's projection,
test_evaluation's) then wait on them past their patience: with it first, four such tests
timed out. Last, it slows nobody. Until each test system gets a topic namespace of its own
(issue 15, point 6), the order is the isolation.
"""

from __future__ import annotations

import pytest

RACES = "tests/integration/test_command_races.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    races = [item for item in items if item.nodeid.startswith(RACES)]
    if races:
        items[:] = [item for item in items if not item.nodeid.startswith(RACES)] + races
