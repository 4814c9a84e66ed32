"""The staff register's core on hand-built spells: who covered a grid when, and the
decisions that open and close spells."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridloop.citypack.staff import StaffRole
from gridloop.refusal import Refused
from services.grid.register import Spell, assign, covering, release

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
GM, TEAM = StaffRole.grid_manager, StaffRole.doctor


def _history() -> list[Spell]:
    """GM-1 from the pack until T0+1d, GM-2 since; a doctor through both."""
    first = Spell("s1", "GM-1", "一", GM, until=T0 + timedelta(days=1))
    second = Spell("s2", "GM-2", "二", GM, since=T0 + timedelta(days=1))
    return [first, second, Spell("s3", "DR-1", "医", TEAM)]


def test_who_covered_the_grid_at_a_time() -> None:
    spells = _history()
    assert [s.staff for s in covering(spells, T0)] == ["GM-1", "DR-1"]
    # The handover instant belongs to the one who starts (a spell ends before `until`).
    assert [s.staff for s in covering(spells, T0 + timedelta(days=1))] == ["GM-2", "DR-1"]
    assert [s.staff for s in covering(spells, None)] == ["GM-2", "DR-1"]


def test_a_second_grid_manager_is_refused_until_the_first_is_released() -> None:
    spells = _history()
    with pytest.raises(Refused) as taken:
        assign(spells, "s4", "GM-3", "三", GM, T0 + timedelta(days=2))
    assert taken.value.code == "role_taken"
    closed = release(spells, "GM-2", GM, T0 + timedelta(days=2))
    assert closed.until == T0 + timedelta(days=2) and closed.id == "s2"
    after = [closed if s.id == "s2" else s for s in spells]
    opened = assign(after, "s4", "GM-3", "三", GM, T0 + timedelta(days=2))
    assert opened.since == T0 + timedelta(days=2) and opened.open


def test_team_roles_take_several_and_nobody_twice() -> None:
    spells = _history()
    assert assign(spells, "s5", "DR-2", "医二", TEAM, T0).staff == "DR-2"
    with pytest.raises(Refused):
        assign(spells, "s5", "DR-1", "医", TEAM, T0)


def test_release_of_someone_not_there_or_before_their_start() -> None:
    spells = _history()
    with pytest.raises(Refused) as missing:
        release(spells, "GM-1", GM, T0 + timedelta(days=3))  # already released
    assert missing.value.why.value == "not_found"
    with pytest.raises(Refused):
        release(spells, "GM-2", GM, T0)
