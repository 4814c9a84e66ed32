"""The due-time index pops exactly what is due, once, and follows rescheduling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.sla.index import DueIndex

T0 = datetime(2025, 3, 4, 1, tzinfo=UTC)
S = timedelta(seconds=1)


def test_pops_only_what_is_due_in_order() -> None:
    index = DueIndex()
    index.schedule("c", T0 + 3 * S)
    index.schedule("a", T0 + S)
    index.schedule("b", T0 + 2 * S)
    assert index.pop_due(T0) == []
    assert index.pop_due(T0 + 2 * S) == ["a", "b"]
    assert len(index) == 1
    assert index.pop_due(T0 + 10 * S) == ["c"]
    assert index.pop_due(T0 + 10 * S) == []


def test_rescheduling_replaces_the_time_earlier_or_later() -> None:
    index = DueIndex()
    index.schedule("a", T0 + S)
    index.schedule("a", T0 + 5 * S)  # later: not due at the old time any more
    assert index.pop_due(T0 + 2 * S) == []
    index.schedule("a", T0 + 3 * S)  # earlier again
    assert index.pop_due(T0 + 3 * S) == ["a"]
    assert index.pop_due(T0 + 9 * S) == []  # the stale entries are skipped


def test_clearing_a_case() -> None:
    index = DueIndex()
    index.schedule("a", T0)
    index.schedule("a", None)
    assert "a" not in index
    assert index.pop_due(T0 + S) == []
    assert index.next_time() is None


def test_a_limit_leaves_the_rest_for_the_next_tick() -> None:
    index = DueIndex()
    for n in range(10):
        index.schedule(f"c{n}", T0 + n * S)
    assert index.pop_due(T0 + 20 * S, limit=4) == ["c0", "c1", "c2", "c3"]
    assert index.next_time() == (T0 + 4 * S).timestamp()
    assert len(index.pop_due(T0 + 20 * S)) == 6


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 100) | st.none()), max_size=60),
    st.integers(0, 100),
)
def test_agrees_with_a_plain_dictionary(schedules: list[tuple[str, int | None]], now: int) -> None:
    index, plain = DueIndex(), dict[str, int]()
    for case_id, offset in schedules:
        index.schedule(case_id, None if offset is None else T0 + offset * S)
        if offset is None:
            plain.pop(case_id, None)
        else:
            plain[case_id] = offset
    due = index.pop_due(T0 + now * S)
    expected = sorted((t, c) for c, t in plain.items() if t <= now)
    assert sorted(due) == sorted(c for _, c in expected)
    assert len(due) == len(set(due))
    assert len(index) == len(plain) - len(due)
