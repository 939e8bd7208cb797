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
