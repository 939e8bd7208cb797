"""What the analysis finds in a trace: immutable records (named tuples), stdlib only.

Named tuples, not dataclasses: ``gpuperf analyze`` runs one process per trace, and importing
``dataclasses`` (with ``inspect``) and building these classes with it took about a tenth of
such a process. Fields named ``count`` shadow ``tuple.count``, which nothing here calls.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Protocol


class KernelStat(NamedTuple):
    name: str
    count: int  # type: ignore[assignment]
    total_us: float
    mean_us: float
    pct_of_kernel_time: float


class TrustProblem(NamedTuple):
    """Something in a trace that makes some of its metrics unreliable (analysis.trust)."""

    check: str  # busy-over-step, graph-under-recorded, outside-window, stream-overlap, unmatched-launches
    detail: str
    unreliable: tuple[str, ...]  # the metrics it makes unreliable

    def describe(self) -> str:
        return f"{self.detail} (unreliable: {', '.join(self.unreliable)})"


class OperatorStat(NamedTuple):
    """One top-level operator's cost over the trace: the host time the step paid to run it
    against the device time of the work it launched (far more host than device: dispatch-heavy)."""

    name: str
    calls: int
    host_us: float  # summed durations of its calls on the host
    device_us: float  # summed durations of the device operations launched inside its calls


class GapStats(NamedTuple):
    """Idle stretches between merged busy intervals of one device."""

    count: int  # type: ignore[assignment]
    total_us: float
    median_us: float
    max_us: float
    host_us: float  # gap time whose next operation was launched after the gap began
    host_share_pct: float  # host_us as a share of total_us


class Launches(NamedTuple):
    """Device operations joined to their host call through the correlation id,
    counted once per host call (one cudaGraphLaunch covers many kernels)."""

    runtime: int
    driver: int
    graph: int
    other: int  # joined to another API call, e.g. cudaMemcpyAsync
    unmatched_ops: int  # device operations with no host call in the trace


class CopyStats(NamedTuple):
    count: int  # type: ignore[assignment]
    total_us: float


class AllocationStats(NamedTuple):
    """Allocator calls on the host; slow ones stall the launch of everything after them."""

    calls: int
    slow: int  # calls longer than the slow threshold (1 ms)
    worst_ms: float  # the longest call, slow or not
    slow_total_us: float


class Bottleneck(NamedTuple):
    kind: str  # overhead-bound, communication-bound, compute-bound, memory-bound, allocation-stalls, unavailable
    method: str  # "trace" (timeline evidence), "roofline", or "heuristic" (GEMM share)
    evidence: tuple[str, ...]
    fix: str
    secondary: tuple[str, ...] = ()


class DeviceMetrics(NamedTuple):
    device: int
    device_name: str | None
    steps: int
    gpu_active_pct: float
    busy_us: float
    span_us: float
    kernels: int
    device_ops: int
    kernel_us: float  # summed kernel durations (overlap counted twice)
    dispatch_ratio: float | None
    nccl_pct: float | None
    nccl_us: float
    nccl_overlap_pct: float | None  # NCCL kernel time with other device work running alongside
    compute_us: float  # union of the device work that is not NCCL: the step's own computation
    nccl_exposed_us: float  # NCCL time (union) with no other device work alongside: not hidden
    collective_us: tuple[float, ...]  # each NCCL kernel's duration, in start order (matched across ranks)
    gemm_us: float  # summed durations of matrix-multiply kernels (by name)
    elementwise_kernels: int
    launches: Launches
    gaps: GapStats
    top_kernels: tuple[KernelStat, ...]
    memcpy: CopyStats
    memset: CopyStats
    allocations: AllocationStats  # cudaMalloc-family calls
    frees: AllocationStats  # cudaFree-family calls
    allocator_stall_us: float  # union of allocator calls over 1 ms, inside the device span
    flops: float
    flop_bytes: float
    flop_element_size: int | None  # operand bytes of the operators carrying most FLOPs
    cpu_ops: int  # top-level operators the host ran (the dispatcher work it pays for)
    host_syncs: int  # synchronizing CUDA calls inside operators: the host waited for the GPU
    sync_ops: dict[str, int]  # top-level operator -> its synchronizing calls
    top_operators: tuple[OperatorStat, ...]  # top-level operators by host time, most first
    unavailable: dict[str, str]  # metric -> why it has no value, or why it cannot be believed
    kernel_counts: dict[str, int]  # kernel name -> launches in the trace
    kernel_time_us: dict[str, float]  # kernel name -> summed duration in the trace
    # Set once the figures above are known:
    trust: tuple[TrustProblem, ...] = ()  # why some metrics cannot be believed; empty: none found
    classification: Bottleneck | None = None
    host_wait_pct: float = 0.0  # share of the step the GPU idled waiting for the host (bottleneck.host_wait_pct)

    @property
    def kernels_per_step(self) -> float:
        return self.kernels / self.steps

    @property
    def busy_us_per_step(self) -> float:
        return self.busy_us / self.steps

    @property
    def gpu_ms_per_step(self) -> float:
        """The device time a step costs: its kernels', copies' and memsets' durations summed
        (overlapping work counted twice), which the host's speed does not move."""
        return (self.kernel_us + self.memcpy.total_us + self.memset.total_us) / self.steps / 1000.0

    @property
    def launches_per_step(self) -> float:
        total = self.launches.runtime + self.launches.driver + self.launches.graph
        return total / self.steps

    @property
    def cpu_ops_per_step(self) -> float:
        return self.cpu_ops / self.steps

    @property
    def host_syncs_per_step(self) -> float:
        return self.host_syncs / self.steps

    @property
    def compute_us_per_step(self) -> float:
        return self.compute_us / self.steps

    @property
    def nccl_exposed_pct(self) -> float:
        """Exposed communication as a share of the device span (the profiled steps)."""
        return 100.0 * self.nccl_exposed_us / self.span_us if self.span_us > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = plain(self)
        out["kernels_per_step"] = self.kernels_per_step
        out["compute_us_per_step"] = self.compute_us_per_step
        out["cpu_ops_per_step"] = self.cpu_ops_per_step
        out["host_syncs_per_step"] = self.host_syncs_per_step
        out["nccl_exposed_pct"] = self.nccl_exposed_pct
        out["busy_us_per_step"] = self.busy_us_per_step
        out["gpu_ms_per_step"] = self.gpu_ms_per_step
        out["launches_per_step"] = self.launches_per_step
        return out


class HostSummary(NamedTuple):
    """A trace without device work (a CPU-only profile): what its host did."""

    busy_us: float  # the union of operators, runtime and driver calls
    cpu_ops: int  # top-level operators
    top_operators: tuple[OperatorStat, ...]  # by host time, most first


class TraceMetrics(NamedTuple):
    """Metrics of one trace file: one entry per device, never pooled.

    ``primary`` is the only device, or on a multi-device trace the one with the
    most busy time; the flat keys of ``to_dict`` are that device's.
    """

    source: str
    rank: int | None
    steps: int
    devices: tuple[DeviceMetrics, ...]
    host_only_reason: str | None = None  # set when the trace has no device operations
    host: HostSummary | None = None  # what a trace without device work holds: the host's

    @property
    def primary(self) -> DeviceMetrics | None:
        if not self.devices:
            return None
        return max(self.devices, key=lambda d: (d.busy_us, -d.device))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "rank": self.rank, "steps": self.steps}
        primary = self.primary
        if primary is None:
            reason = self.host_only_reason or "no device operations"
            for key in ("gpu_active_pct", "busy_us", "span_us", "dispatch_ratio", "nccl_pct"):
                out[key] = None
            out["kernels"] = 0
            out["classification"] = plain(Bottleneck("unavailable", "trace", (reason,), "none"))
            out["unavailable"] = {"gpu_active_pct": reason, "dispatch_ratio": reason, "nccl_pct": reason}
            out["devices"] = []
            out["host"] = plain(self.host) if self.host is not None else None
            return out
        out.update(primary.to_dict())
        out["devices"] = [d.to_dict() for d in self.devices]
        return out


class _Record(Protocol):
    def _asdict(self) -> dict[str, Any]: ...


def plain(record: _Record) -> dict[str, Any]:
    """A record as JSON-ready data: its fields by name, the records in them likewise."""
    return {name: _plain_value(value) for name, value in record._asdict().items()}


def _plain_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return plain(value) if hasattr(value, "_asdict") else [_plain_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain_value(item) for key, item in value.items()}
    return value


def finite_json(value: Any, where: str = "", notes: list[str] | None = None) -> tuple[Any, list[str]]:
    """``value`` with every infinite or NaN float as None, which strict JSON can hold, and a note
    naming each replaced one by its path (two FLOP counts can sum to inf)."""
    found: list[str] = [] if notes is None else notes
    if isinstance(value, float) and not math.isfinite(value):
        found.append(f"{where or 'value'}: {value} is not a finite number; written as null")
        return None, found
    if isinstance(value, dict):
        return {k: finite_json(v, f"{where}.{k}" if where else str(k), found)[0] for k, v in value.items()}, found
    if isinstance(value, (list, tuple)):
        return [finite_json(v, f"{where}[{i}]", found)[0] for i, v in enumerate(value)], found
    return value, found
