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


# compile_events keys are "<kind>: <what and where>", the kind naming the count it adds to.
COMPILE_EVENT_KINDS = {"graph_breaks": "graph break", "recompiles": "recompile", "cudagraph_skips": "cudagraph skip"}


# Counts compared exactly: what the step does, which noise does not move.
EXACT_COUNTS = (
    "kernels_per_step",
    "launches_per_step",
    "host_syncs_per_step",
    "cpu_ops_per_step",
    "graph_breaks",
    "recompiles",
    "cudagraph_skips",
    "new_allocs_per_step",
)
# Baselines keep counts whole, not to four digits: 14616.67 kernels per step kept as 14620
# read back as a regression in the next process (an H100 example served a request that way).
COUNT_FIELDS = frozenset({*EXACT_COUNTS, "kernels", "sync_ops", "compile_events"})


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
    graph_breaks: float | None = None  # torch.compile's, during the test's calls (None: nothing compiled there)
    recompiles: float | None = None
    cudagraph_skips: float | None = None  # compiled graphs inductor did not capture as CUDA graphs
    compile_events: dict[str, float] = field(default_factory=dict)  # "graph break: where: why" -> count
    new_allocs_per_step: float | None = None  # new device allocations per timed call, after warmup
    # A generation (gpu_profiler.generate): prefill and decode kept apart, each call's median.
    ttft_ms: float | None = None  # median time to first token over the requests
    tpot_ms: float | None = None  # median time per output token after the first
    tokens_per_s: float | None = None  # output tokens per second, median over the calls
    ttft_per_call_ms: tuple[float, ...] = ()
    tpot_per_call_ms: tuple[float, ...] = ()

    @property
    def rounds(self) -> Rounds:
        return Rounds(self.round_medians_ms, self.round_clock_mhz)

    def per_call(self, metric: str) -> Rounds:
        """A generation's per-call medians of ``metric`` (ttft_ms or tpot_ms), compared as rounds are
        (no clock series: the calls are not the rounds the clock was read after)."""
        return Rounds(getattr(self, f"{metric.removesuffix('_ms')}_per_call_ms"), ())
