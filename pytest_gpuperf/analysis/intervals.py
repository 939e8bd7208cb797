"""Interval arithmetic on half-open ``(start, end)`` pairs, in microseconds.

Every time metric is a length of a union of intervals, so this is the one place
that merges, clips and measures them. Inputs need not be sorted.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from operator import itemgetter

Interval = tuple[float, float]


# An interval's start and end, as sort and bisection keys (a DeviceOp's too: it starts (start, end, ...)).
START, END = itemgetter(0), itemgetter(1)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of ``intervals`` as sorted, disjoint, non-touching intervals."""
    # By start alone: the union does not depend on the order of equal starts, and float keys sort fastest.
    ordered = sorted(intervals, key=START)
    merged: list[Interval] = []
    if not ordered:
        return merged
    append = merged.append
    cur_start, cur_end = ordered[0]
    for start, end in ordered:
        if start <= cur_end:
            if end > cur_end:
                cur_end = end
        else:
            append((cur_start, cur_end))
            cur_start, cur_end = start, end
    append((cur_start, cur_end))
    return merged


def total(merged: Sequence[Interval]) -> float:
    """Summed length of already-merged (disjoint) intervals."""
    return sum(end - start for start, end in merged)


def clip(merged: Sequence[Interval], lo: float, hi: float) -> list[Interval]:
    """Parts of ``merged`` (sorted, disjoint) that lie inside ``[lo, hi]``."""
    first = bisect_right(merged, lo, key=END)  # the first that ends after lo
    stop = bisect_left(merged, hi, key=START)  # the first that starts at hi or later
    out = list(merged[first:stop])
    if out:  # only the first can start before lo, only the last end after hi
        out[0] = (max(out[0][0], lo), out[0][1])
        out[-1] = (out[-1][0], min(out[-1][1], hi))
    return out


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Where two merged (sorted, disjoint) interval lists overlap, in order."""
    if len(a) > len(b):  # walk the shorter (a trace's NCCL kernels, say) and bisect the longer
        a, b = b, a
    out: list[Interval] = []
    for start, end in a:
        first = bisect_right(b, start, key=END)  # the first that ends after start
        stop = bisect_left(b, end, lo=first, key=START)  # the first that starts at end or later
        for other_start, other_end in b[first:stop]:
            lo, hi = max(start, other_start), min(end, other_end)
            if lo < hi:  # zero-length intervals overlap nothing
                out.append((lo, hi))
    return out
