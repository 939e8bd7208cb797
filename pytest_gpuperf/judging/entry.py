"""A baseline entry: what a baseline keeps of one measured test, and what a new measurement
is compared as."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Rounds(NamedTuple):
    """The timed rounds as the latency comparison reads them: each round's median, and the SM
    clock after each round (empty where it could not be read)."""

    medians_ms: tuple[float, ...]
    clock_mhz: tuple[float, ...]


@dataclass(frozen=True)
class Entry:
    """What a baseline keeps of one measured test, and what a new measurement is compared as."""

    samples: int
    p50_ms: float
    p99_ms: float
    p99_ci_ms: tuple[float, float]  # order-statistic interval at the comparison's per-side confidence
    round_medians_ms: tuple[float, ...]
    round_clock_mhz: tuple[float, ...] = ()  # the SM clock after each round; empty where none was read
    peak_mem_mb: float | None = None
    items_per_s: float | None = None
    gpu_active_pct: float | None = None
    dispatch_ratio: float | None = None
    kernels_per_step: float | None = None
    launches_per_step: float | None = None
    kernels: dict[str, float] = field(default_factory=dict)  # kernel name -> launches per step
    step_mem_mb: float | None = None  # peak above what was allocated when the step began
    host_wait_pct: float | None = None  # share of the step the GPU waited for the host to launch work
    gpu_us_per_launch: float | None = None  # GPU busy time per host launch: below 100 us a slow host can pace it
    kernel_us: dict[str, float] = field(default_factory=dict)  # kernel name -> GPU time per step, us
    host_syncs_per_step: float | None = None  # synchronizing calls inside operators
    sync_ops: dict[str, float] = field(default_factory=dict)  # top-level operator -> its syncs per step
    cpu_ops_per_step: float | None = None  # top-level operators the host ran

    @property
    def rounds(self) -> Rounds:
        return Rounds(self.round_medians_ms, self.round_clock_mhz)
