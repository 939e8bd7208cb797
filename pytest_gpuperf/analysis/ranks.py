"""Spread of metrics between ranks: from one trace per rank (``gpuperf analyze``), and
from what each rank of a torchrun job measured (``--gpuperf`` under torchrun)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_gpuperf.analysis.results import TraceMetrics

SPREAD_METRICS = (
    "gpu_active_pct",
    "dispatch_ratio",
    "nccl_pct",
    "nccl_overlap_pct",
    "busy_us_per_step",
    "kernels_per_step",
)


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
    return RankSpread(ranks, tuple(spreads), imbalance_pct([p.nccl_us for _, p in primaries]))


def imbalance_pct(values: list[float]) -> float | None:
    """(max - min) / max, in percent; None where there is nothing to compare."""
    return 100.0 * (max(values) - min(values)) / max(values) if values and max(values) > 0 else None


@dataclass(frozen=True)
class RankResult:
    """What one rank measured for a test."""

    rank: int
    p50_ms: float
    p99_ms: float
    nccl_pct: float | None  # NCCL share of kernel time in the rank's profiled pass
    nccl_us_per_step: float | None
    nccl_overlap_pct: float | None = None  # of its NCCL time, the share other device work overlapped


@dataclass(frozen=True)
class RanksReport:
    """A test's measurements on every rank of the job."""

    results: tuple[RankResult, ...]

    @classmethod
    def of(cls, payloads: list[dict[str, Any]]) -> RanksReport:
        return cls(tuple(sorted((RankResult(**p) for p in payloads), key=lambda r: r.rank)))

    @property
    def slowest(self) -> RankResult:
        """The rank with the highest p99: the job waits for it."""
        return max(self.results, key=lambda r: r.p99_ms)

    def every_rank(self, field: str) -> list[float] | None:
        """A figure from every rank; None where any rank lacks it (a partial spread misleads)."""
        values = [getattr(r, field) for r in self.results]
        return None if any(v is None for v in values) else values

    @property
    def nccl_imbalance_pct(self) -> float | None:
        """(max - min) / max of NCCL kernel time per step between ranks: a rank that spends
        longer in NCCL is waiting for the others."""
        values = self.every_rank("nccl_us_per_step")
        return imbalance_pct(values) if values is not None else None

    def describe(self) -> str:
        p50s = [r.p50_ms for r in self.results]
        text = (
            f"{len(self.results)} ranks: p50 {min(p50s):.4g}-{max(p50s):.4g} ms; "
            f"slowest p99 {self.slowest.p99_ms:.4g} ms (rank {self.slowest.rank})"
        )
        if (shares := self.every_rank("nccl_pct")) is not None:
            text += f"; NCCL {min(shares):.1f}-{max(shares):.1f}% of kernel time"
        if (overlaps := self.every_rank("nccl_overlap_pct")) is not None:
            text += f"; {min(overlaps):.0f}-{max(overlaps):.0f}% of it overlapped by computation"
        imbalance = self.nccl_imbalance_pct
        return text + (f"; NCCL time imbalance {imbalance:.1f}%" if imbalance is not None else "")
