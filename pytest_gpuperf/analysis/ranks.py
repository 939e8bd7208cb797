"""Spread of metrics between ranks: from one trace per rank (``gpuperf analyze``), and
from what each rank of a torchrun job measured (``--gpuperf`` under torchrun)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pytest_gpuperf.analysis.bottleneck import RankWait, classify
from pytest_gpuperf.analysis.results import DeviceMetrics, TraceMetrics

SPREAD_METRICS = (
    "gpu_active_pct",
    "dispatch_ratio",
    "nccl_pct",
    "nccl_overlap_pct",
    "busy_us_per_step",
    "compute_us_per_step",
    "kernels_per_step",
)
BALANCED_PCT = 10.0  # computation per step within this of the slowest rank's: balanced


class MetricSpread(NamedTuple):
    metric: str
    minimum: float
    maximum: float
    min_rank: int
    max_rank: int

    @property
    def spread(self) -> float:
        return self.maximum - self.minimum


class RankSpread(NamedTuple):
    ranks: tuple[int, ...]
    metrics: tuple[MetricSpread, ...]
    nccl_imbalance_pct: float | None  # (max - min) / max of NCCL kernel time per rank


class RankFigures(NamedTuple):
    """What the cross-rank analysis reads of one rank's profiled pass."""

    rank: int
    steps: int
    compute_us: float  # non-NCCL device time (union), over the pass
    nccl_us: float  # NCCL kernel time, over the pass
    exposed_us: float  # NCCL time nothing else on the device hid
    collective_us: tuple[float, ...]  # each NCCL kernel's duration, in start order

    @classmethod
    def of(cls, rank: int, m: DeviceMetrics) -> RankFigures:
        return cls(rank, m.steps, m.compute_us, m.nccl_us, m.nccl_exposed_us, m.collective_us)


class RankTime(NamedTuple):
    """One rank's device time per step, by what it did."""

    rank: int
    compute_us: float
    nccl_us: float
    exposed_us: float  # NCCL time not hidden behind computation
    wait_us: float  # NCCL time beyond the fastest rank's for the same collectives: waiting for a peer


class RankBalance(NamedTuple):
    """Who the job waits for. Collectives are matched across ranks by their order (from the
    last): the fastest rank's time for one approximates its transfer, any more is waiting."""

    ranks: tuple[RankTime, ...]
    straggler_rank: int  # the most computation per step
    compute_imbalance_pct: float  # (max - min) / max of computation per step
    matched: int  # collectives matched on every rank
    note: str = ""  # why not every collective was matched

    @property
    def late(self) -> RankTime:
        """The rank the others wait for: the one that waits least in the collectives (it reaches
        them last). Usually the straggler; a rank whose host delays it is late with less computation."""
        return min(self.ranks, key=lambda r: (r.wait_us, -r.compute_us))

    @property
    def late_rank(self) -> int:
        return self.late.rank

    def late_by_computation(self) -> bool:
        """Whether the rank the others wait for is the straggler, with computation imbalanced."""
        return self.late_rank == self.straggler_rank and self.compute_imbalance_pct >= BALANCED_PCT

    def excess_pct(self, rank: RankTime) -> float:
        """A rank's computation per step over the fastest rank's, in percent."""
        return 100.0 * (rank.compute_us / min(r.compute_us for r in self.ranks) - 1.0)

    def wait(self, rank: int) -> RankWait:
        """What a rank's bottleneck class needs to know of the others (its wait over the pass)."""
        mine = next(r for r in self.ranks if r.rank == rank)
        late = self.late
        return RankWait(mine.wait_us, late.rank, self.excess_pct(late), self.late_by_computation())

    def describe(self) -> str:
        fastest = min(self.ranks, key=lambda r: r.compute_us)
        straggler = next(r for r in self.ranks if r.rank == self.straggler_rank)
        if self.compute_imbalance_pct < BALANCED_PCT:
            text = f"balanced: computation per step within {self.compute_imbalance_pct:.1f}% between ranks"
        else:
            text = (
                f"straggler rank {straggler.rank}: computation {straggler.compute_us:.0f} us per step, "
                f"{self.excess_pct(straggler):.0f}% more than rank {fastest.rank}'s "
                f"(imbalance {self.compute_imbalance_pct:.1f}%)"
            )
        waits = ", ".join(f"rank {r.rank} {r.wait_us:.0f} us" for r in self.ranks)
        text += f"; waiting in NCCL per step: {waits}"
        if not self.late_by_computation() and max(r.wait_us for r in self.ranks) > 0:
            late = self.late_rank
            text += f"; the others wait for rank {late}, late to the collectives by its host, not its computation"
        return text + (f" ({self.note})" if self.note else "")


def balance(figures: Sequence[RankFigures]) -> RankBalance | None:
    """None with fewer than two ranks or no computation to compare."""
    if len(figures) < 2 or any(f.compute_us <= 0 or f.steps <= 0 for f in figures):
        return None
    counts = [len(f.collective_us) for f in figures]
    matched = min(counts)
    # Aligned at the end: a profiling window that opens while earlier async collectives still
    # run holds a few extra at its start (39 and 35 on two H200 ranks, where 30 were issued).
    series = [f.collective_us[len(f.collective_us) - matched :] for f in figures]
    waits = [0.0] * len(figures)
    for i in range(matched):
        fastest = min(s[i] for s in series)
        for index, s in enumerate(series):
            waits[index] += s[i] - fastest
    note = ""
    if len(set(counts)) > 1:
        note = f"collective counts differ between ranks ({', '.join(map(str, counts))}): the last {matched} matched"
    times = tuple(
        RankTime(f.rank, f.compute_us / f.steps, f.nccl_us / f.steps, f.exposed_us / f.steps, waits[i] / f.steps)
        for i, f in enumerate(figures)
    )
    straggler = max(times, key=lambda t: t.compute_us)
    imbalance = imbalance_pct([t.compute_us for t in times]) or 0.0
    return RankBalance(times, straggler.rank, imbalance, matched, note)


def with_balance(
    per_rank: list[TraceMetrics], step_ms: float | None = None
) -> tuple[list[TraceMetrics], RankBalance | None]:
    """Every rank's trace analysed against the others: each primary device classified again
    knowing how long it waited for a slower rank."""
    ranked = [(rank_of(i, m), m) for i, m in enumerate(per_rank)]
    figures = [RankFigures.of(r, m.primary) for r, m in ranked if m.primary is not None]
    found = balance(figures) if len(figures) == len(per_rank) else None
    if found is None:
        return per_rank, None
    return [reclassified(m, found.wait(r), step_ms) for r, m in ranked], found


def reclassified(metrics: TraceMetrics, wait: RankWait, step_ms: float | None = None) -> TraceMetrics:
    """``metrics`` with its primary device classified knowing this rank's wait for the others."""
    primary = metrics.primary
    if primary is None:
        return metrics
    # The wait is per step; the class reads time over the whole pass, as its other figures.
    over_pass = wait._replace(wait_us=wait.wait_us * primary.steps)
    again = primary._replace(classification=classify(primary, step_ms, over_pass))
    return metrics._replace(devices=tuple(again if d is primary else d for d in metrics.devices))


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
    steps: int = 0  # profiled steps; 0: no profiled pass with device work
    compute_us: float = 0.0  # over the profiled pass: non-NCCL device time
    nccl_us: float = 0.0
    exposed_us: float = 0.0
    collective_us: tuple[float, ...] = ()

    @property
    def figures(self) -> RankFigures | None:
        if self.steps <= 0:
            return None
        return RankFigures(self.rank, self.steps, self.compute_us, self.nccl_us, self.exposed_us, self.collective_us)


@dataclass(frozen=True)
class RanksReport:
    """A test's measurements on every rank of the job."""

    results: tuple[RankResult, ...]

    @classmethod
    def of(cls, payloads: list[dict[str, Any]]) -> RanksReport:
        results = (RankResult(**{**p, "collective_us": tuple(p.get("collective_us", ()))}) for p in payloads)
        return cls(tuple(sorted(results, key=lambda r: r.rank)))

    @property
    def balance(self) -> RankBalance | None:
        """Who the job waits for, where every rank has a profiled pass with device work."""
        figures = [r.figures for r in self.results]
        return balance([f for f in figures if f is not None]) if all(f is not None for f in figures) else None

    @property
    def slowest(self) -> RankResult:
        """The rank with the highest p99: the job's tail. Who the job waits for, the straggler,
        is named by computation per step (``balance``): a rank that waits has a long p99 too."""
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
        text += f"; NCCL time imbalance {imbalance:.1f}%" if imbalance is not None else ""
        found = self.balance
        return text + (f"; {found.describe()}" if found is not None else "")
