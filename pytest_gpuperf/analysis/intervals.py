"""Interval arithmetic on half-open ``(start, end)`` pairs, in microseconds.

Every time metric is a length of a union of intervals, so this is the one place
that merges, clips and measures them. Inputs need not be sorted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Interval = tuple[float, float]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of ``intervals`` as sorted, disjoint, non-touching intervals."""
    ordered = sorted(intervals)
    merged: list[Interval] = []
    if not ordered:
        return merged
    cur_start, cur_end = ordered[0]
    for start, end in ordered[1:]:
        if start <= cur_end:
            if end > cur_end:
                cur_end = end
        else:
            merged.append((cur_start, cur_end))
            cur_start, cur_end = start, end
    merged.append((cur_start, cur_end))
    return merged


def total(merged: Sequence[Interval]) -> float:
    """Summed length of already-merged (disjoint) intervals."""
    return sum(end - start for start, end in merged)


def clip(merged: Sequence[Interval], lo: float, hi: float) -> list[Interval]:
    """Parts of disjoint ``merged`` that lie inside ``[lo, hi]``."""
    out: list[Interval] = []
    for start, end in merged:
        if end <= lo or start >= hi:
            continue
        out.append((max(start, lo), min(end, hi)))
    return out


def gaps(merged: Sequence[Interval]) -> list[Interval]:
    """The idle stretches between consecutive disjoint intervals."""
    return [(merged[i - 1][1], merged[i][0]) for i in range(1, len(merged))]


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Where two merged (sorted, disjoint) interval lists overlap."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out
