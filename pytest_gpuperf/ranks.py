"""Spread of metrics between ranks, given one trace per rank."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_gpuperf.model import TraceMetrics

SPREAD_METRICS = ("gpu_active_pct", "dispatch_ratio", "nccl_pct", "busy_us_per_step", "kernels_per_step")


@dataclass(frozen=True)
class MetricSpread:
    metric: str
    minimum: float
    maximum: float
    min_rank: int
    max_rank: int

    @property
    def spread(self) -> float:
        return self.maximum - self.minimum


@dataclass(frozen=True)
class RankSpread:
    ranks: tuple[int, ...]
    metrics: tuple[MetricSpread, ...]
    nccl_imbalance_pct: float | None  # (max - min) / max of NCCL kernel time per rank


def rank_of(index: int, metrics: TraceMetrics) -> int:
    """The trace's own rank (Kineto's distributedInfo), else its position."""
    return metrics.rank if metrics.rank is not None else index


def rank_spread(per_rank: list[TraceMetrics]) -> RankSpread:
    ranks = tuple(rank_of(i, m) for i, m in enumerate(per_rank))
    primaries = [(r, m.primary) for r, m in zip(ranks, per_rank, strict=True) if m.primary is not None]
    spreads = []
    for metric in SPREAD_METRICS:
        values = [(getattr(p, metric), r) for r, p in primaries if getattr(p, metric) is not None]
        if values:
            lo, hi = min(values), max(values)
            spreads.append(MetricSpread(metric, lo[0], hi[0], lo[1], hi[1]))
    nccl = [p.nccl_us for _, p in primaries]
    imbalance = 100.0 * (max(nccl) - min(nccl)) / max(nccl) if nccl and max(nccl) > 0 else None
    return RankSpread(ranks, tuple(spreads), imbalance)
