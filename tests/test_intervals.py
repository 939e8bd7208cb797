from hypothesis import given
from hypothesis import strategies as st

from pytest_gpuperf.analysis import intervals


def test_merge_unions_overlapping_touching_and_nested_intervals() -> None:
    merged = intervals.merge([(5.0, 6.0), (0.0, 2.0), (1.0, 3.0), (3.0, 4.0), (0.5, 0.7)])
    assert merged == [(0.0, 4.0), (5.0, 6.0)]
    assert intervals.total(merged) == 5.0


def test_merge_of_nothing_is_empty() -> None:
    assert intervals.merge([]) == []
    assert intervals.total([]) == 0.0


def test_clip_keeps_only_the_window() -> None:
    assert intervals.clip([(0.0, 2.0), (3.0, 5.0), (6.0, 7.0)], 1.0, 4.0) == [(1.0, 2.0), (3.0, 4.0)]
    assert intervals.clip([(0.0, 1.0)], 1.0, 2.0) == []


def test_zero_length_intervals_add_nothing() -> None:
    assert intervals.total(intervals.merge([(1.0, 1.0), (2.0, 2.0)])) == 0.0


@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=25),
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=25),
)
def test_intersection_is_every_overlap_of_the_two_unions(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> None:
    first = intervals.merge([(float(s), float(s + n)) for s, n in a])
    second = intervals.merge([(float(s), float(s + n)) for s, n in b])
    overlaps = sorted((max(s1, s2), min(e1, e2)) for s1, e1 in first for s2, e2 in second if max(s1, s2) < min(e1, e2))
    assert intervals.intersect(first, second) == overlaps == intervals.intersect(second, first)
