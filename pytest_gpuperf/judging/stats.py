"""Quantiles with distribution-free confidence intervals.

Latency samples are skewed and heavy-tailed, so intervals come from order
statistics (the binomial count of samples below the true quantile), not from a
normal approximation or a bootstrap (which under-covers high quantiles).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
EXACT_UP_TO = 2000  # samples; beyond, the binomial ranks come from its normal approximation


@dataclass(frozen=True)
class Estimate:
    """A quantile of the samples with its confidence interval."""

    value: float
    low: float
    high: float
    exact_bounds: bool  # False: too few samples for the interval's level; it is widened to the extremes


def quantile(sorted_samples: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_samples:
        raise ValueError("no samples")
    position = q * (len(sorted_samples) - 1)
    below = math.floor(position)
    above = min(below + 1, len(sorted_samples) - 1)
    weight = position - below
    return sorted_samples[below] * (1.0 - weight) + sorted_samples[above] * weight


def _binomial_cdf_table(n: int, q: float) -> list[float]:
    """P(B <= k) for k = 0..n, B ~ Binomial(n, q), summed in log space."""
    if q <= 0.0:
        return [1.0] * (n + 1)
    if q >= 1.0:
        return [0.0] * n + [1.0]
    log_q, log_p = math.log(q), math.log1p(-q)
    log_n = math.lgamma(n + 1)
    cdf, total = [], 0.0
    for k in range(n + 1):
        total += math.exp(log_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_q + (n - k) * log_p)
        cdf.append(min(total, 1.0))
    return cdf


def quantile_interval(samples: Sequence[float], q: float, confidence: float = CONFIDENCE) -> Estimate:
    """The q-quantile and a two-sided interval [X_(l), X_(u)] of order statistics
    with P(X_(l) <= true quantile <= X_(u)) >= confidence."""
    ordered = sorted(samples)
    n = len(ordered)
    value = quantile(ordered, q)
    alpha = (1.0 - confidence) / 2.0
    if n > EXACT_UP_TO:
        z = statistics.NormalDist().inv_cdf(1.0 - alpha)
        spread = z * math.sqrt(n * q * (1.0 - q))
        lower, upper = math.floor(n * q - spread), math.ceil(n * q + spread) + 1  # 1-based ranks
        exact = lower >= 1 and upper <= n
        low = ordered[max(lower, 1) - 1]
        high = ordered[min(upper, n) - 1]
        return Estimate(value, min(low, value), max(high, value), exact)
    cdf = _binomial_cdf_table(n, q)
    # P(X_(k) <= xi_q) = P(B >= k) = 1 - cdf[k-1]; ranks are 1-based.
    lower_rank = max((k for k in range(1, n + 1) if 1.0 - cdf[k - 1] >= 1.0 - alpha), default=None)
    upper_rank = min((k for k in range(1, n + 1) if cdf[k - 1] >= 1.0 - alpha), default=None)
    exact = lower_rank is not None and upper_rank is not None
    low = ordered[lower_rank - 1] if lower_rank is not None else ordered[0]
    high = ordered[upper_rank - 1] if upper_rank is not None else ordered[-1]
    return Estimate(value, min(low, value), max(high, value), exact)
