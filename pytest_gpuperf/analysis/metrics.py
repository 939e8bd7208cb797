"""Trace to metrics, exactly as DESIGN.md defines them (tests pin these).

- device ops: complete events of category kernel, gpu_memcpy or gpu_memset.
- gpu_active_pct = 100 * |union of device-op intervals, all streams| / (last end - first start).
- dispatch_ratio = |union of host intervals clipped to the device span, minus the
  union of synchronize calls| / |device busy union|.
- nccl_pct = 100 * summed durations of kernels whose name contains "nccl" / summed kernel durations.
- nccl_overlap_pct = 100 * |union(NCCL kernels) & union(other device operations)| / |union(NCCL kernels)|.
- launches: device ops joined to host calls through the correlation id.
- gaps: idle stretches between merged busy intervals, attributed to the host when
  the host call that launched the next operation started after the gap began.
- compute_us = |union of device operations that are not NCCL kernels|; nccl_exposed_us =
  |union(NCCL kernels)| - |union(NCCL kernels) & union(other device operations)|;
  collective_us: each NCCL kernel's duration in start order (ranks.balance matches them).
- cpu_ops: operators (cpu_op) not inside another operator; host_syncs: synchronizing CUDA
  calls and device-to-host copies into pageable memory that lie inside such an operator,
  counted in it (sync_ops); a synchronize outside every operator is not counted.
Every metric is computed per device; nothing is pooled across devices.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from typing import NamedTuple

from pytest_gpuperf.analysis import intervals
from pytest_gpuperf.analysis.bottleneck import classify, dominant_element_size, host_wait_pct, is_elementwise, is_gemm
from pytest_gpuperf.analysis.results import (
    AllocationStats,
    CopyStats,
    DeviceMetrics,
    GapStats,
    HostSummary,
    KernelStat,
    Launches,
    OperatorStat,
    TraceMetrics,
)
from pytest_gpuperf.analysis.trace import KERNEL, MEMCPY, MEMSET, ApiCall, DeviceOp, Trace, collector_paused
from pytest_gpuperf.analysis.trust import trust_problems, unreliable

SLOW_ALLOCATOR_CALL_US = 1000.0
NO_DEVICE_OPS = "no GPU events (kernel, gpu_memcpy, gpu_memset) in the trace"


def analyze(trace: Trace, *, top: int = 10, step_ms: float | None = None) -> TraceMetrics:
    """``step_ms``: the step's latency timed without the profiler, if known (see bottleneck.classify)."""
    with collector_paused():
        return _analyze(trace, top, step_ms)


class _Shared(NamedTuple):
    """What every device's metrics take from the trace as a whole."""

    host: list[intervals.Interval]  # merged host work
    syncs: list[intervals.Interval]  # merged synchronize calls
    allocations: AllocationStats
    frees: AllocationStats
    calls: HostCalls
    flops: float
    flop_bytes: float
    flop_element_size: int | None


def _analyze(trace: Trace, top: int, step_ms: float | None) -> TraceMetrics:
    if not trace.device_ops:
        calls = host_calls(trace)
        host = HostSummary(intervals.total(intervals.merge(trace.host)), calls.cpu_ops, calls.operators[:top])
        return TraceMetrics(trace.source, trace.rank, trace.steps, (), host_only_reason=NO_DEVICE_OPS, host=host)
    by_device: dict[int, list[DeviceOp]] = defaultdict(list)
    for op in trace.device_ops:
        by_device[op.device].append(op)
    shared = _Shared(
        host=intervals.merge(trace.host),
        syncs=intervals.merge(trace.syncs),
        allocations=_allocator_calls(trace.allocations),
        frees=_allocator_calls(trace.frees),
        calls=host_calls(trace),
        flops=sum(op.flops for op in trace.flop_ops),
        flop_bytes=sum(op.bytes for op in trace.flop_ops),
        flop_element_size=dominant_element_size(trace.flop_ops),
    )
    launched = {op.correlation for op in trace.device_ops if op.correlation is not None}
    devices = []
    for device in sorted(by_device):
        metrics = _device_metrics(trace, device, by_device[device], shared, top)
        problems = trust_problems(metrics, by_device[device], trace.api_calls, launched, _window(trace), step_ms)
        for metric, reason in unreliable(problems).items():
            metrics.unavailable.setdefault(metric, reason)
        metrics = metrics._replace(host_wait_pct=host_wait_pct(metrics, step_ms), trust=problems)
        devices.append(metrics._replace(classification=classify(metrics, step_ms)))
    return TraceMetrics(trace.source, trace.rank, trace.steps, tuple(devices))


def _device_metrics(trace: Trace, device: int, ops: list[DeviceOp], shared: _Shared, top: int) -> DeviceMetrics:
    _sort_by_start_then_end(ops)
    busy = intervals.merge((op.start, op.end) for op in ops)
    busy_us = intervals.total(busy)
    lo, hi = ops[0].start, max(op.end for op in ops)
    span_us = hi - lo
    unavailable: dict[str, str] = {}
    slow_calls = intervals.merge(
        (call.start, call.end)
        for call in (*trace.allocations, *trace.frees)
        if call.end - call.start > SLOW_ALLOCATOR_CALL_US
    )

    if span_us > 0:
        gpu_active_pct = 100.0 * busy_us / span_us
    else:
        gpu_active_pct = 0.0
        unavailable["gpu_active_pct"] = "device operations have zero total span"

    dispatch_ratio: float | None = None
    if not shared.host:
        unavailable["dispatch_ratio"] = "no host events (cpu_op, cuda_runtime, cuda_driver) in the trace"
    elif busy_us <= 0:
        unavailable["dispatch_ratio"] = "device busy time is zero"
    else:
        host_us = intervals.total(intervals.clip(shared.host, lo, hi))
        host_us -= intervals.total(intervals.clip(shared.syncs, lo, hi))
        dispatch_ratio = host_us / busy_us

    kernels = [op for op in ops if op.kind == KERNEL]
    by_name = _kernels_by_name(kernels)  # names repeat: classify each once, not per launch
    kernel_us = sum(total for _, total in by_name.values())
    nccl_us = sum(total for name, (_, total) in by_name.items() if is_nccl(name))
    nccl_pct: float | None = None
    if kernel_us > 0:
        nccl_pct = 100.0 * nccl_us / kernel_us
    else:
        unavailable["nccl_pct"] = "no kernel time in the trace"
    comm = _communication(ops, {name for name in by_name if is_nccl(name)}, busy_us)
    nccl_overlap_pct = 100.0 * comm.overlapped_us / comm.nccl_union_us if comm.nccl_union_us > 0 else None
    if nccl_overlap_pct is None:
        unavailable["nccl_overlap_pct"] = "no NCCL kernels in the trace"
    if not trace.ops:
        unavailable.update(cpu_ops_per_step=NO_OPERATORS, host_syncs_per_step=NO_OPERATORS)

    return DeviceMetrics(
        device=device,
        device_name=trace.device_names.get(device),
        steps=trace.steps,
        gpu_active_pct=gpu_active_pct,
        busy_us=busy_us,
        span_us=span_us,
        kernels=len(kernels),
        device_ops=len(ops),
        kernel_us=kernel_us,
        dispatch_ratio=dispatch_ratio,
        nccl_pct=nccl_pct,
        nccl_us=nccl_us,
        nccl_overlap_pct=nccl_overlap_pct,
        compute_us=comm.compute_us,
        nccl_exposed_us=comm.nccl_union_us - comm.overlapped_us,
        collective_us=comm.collectives,
        gemm_us=sum(total for name, (_, total) in by_name.items() if is_gemm(name)),
        elementwise_kernels=sum(count for name, (count, _) in by_name.items() if is_elementwise(name)),
        launches=_launches(ops, trace.api_calls),
        gaps=_gaps(ops, trace.api_calls),
        top_kernels=_top_kernels(by_name, kernel_us, top),
        memcpy=_copies(ops, MEMCPY),
        memset=_copies(ops, MEMSET),
        allocator_stall_us=intervals.total(intervals.clip(slow_calls, lo, hi)),
        allocations=shared.allocations,
        frees=shared.frees,
        flops=shared.flops,
        flop_bytes=shared.flop_bytes,
        flop_element_size=shared.flop_element_size,
        cpu_ops=shared.calls.cpu_ops,
        host_syncs=shared.calls.syncs,
        sync_ops=shared.calls.sync_ops,
        top_operators=shared.calls.operators[:top],
        unavailable=unavailable,
        kernel_counts={name: count for name, (count, _) in sorted(by_name.items())},
        kernel_time_us={name: total for name, (_, total) in sorted(by_name.items())},
    )


def _sort_by_start_then_end(ops: list[DeviceOp]) -> None:
    """As ``ops.sort(key=lambda op: (op.start, op.end))``: two stable sorts on float keys are faster."""
    ops.sort(key=intervals.END)
    ops.sort(key=intervals.START)


def _window(trace: Trace) -> tuple[float, float] | None:
    """From the first profiled step's start to the last one's end, where the trace marks steps."""
    spans = trace.step_spans
    return (min(s for s, _ in spans), max(e for _, e in spans)) if spans else None


def launch_api(name: str) -> str:
    """runtime, driver, graph or other, from a host call's name."""
    if "GraphLaunch" in name:
        return "graph"
    if "Launch" in name:
        return "runtime" if name.startswith("cuda") else "driver" if name.startswith("cu") else "other"
    return "other"


def _launches(ops: list[DeviceOp], api_calls: dict[int, ApiCall]) -> Launches:
    seen: dict[str, set[int]] = {"runtime": set(), "driver": set(), "graph": set(), "other": set()}
    by_name: dict[str, set[int]] = {}  # each call name's set in seen, found once
    unmatched = 0
    for op in ops:
        correlation = op.correlation
        call = api_calls.get(correlation) if correlation is not None else None
        if call is None:
            unmatched += 1
            continue
        launched = by_name.get(call.name)
        if launched is None:
            launched = by_name[call.name] = seen[launch_api(call.name)]
        launched.add(correlation)  # type: ignore[arg-type]
    return Launches(len(seen["runtime"]), len(seen["driver"]), len(seen["graph"]), len(seen["other"]), unmatched)


def _gaps(ops: list[DeviceOp], api_calls: dict[int, ApiCall]) -> GapStats:
    """The idle stretches between the busy intervals of ``ops`` (sorted by start, then end), in
    one sweep: a gap ends where an operation starts after everything before it has ended, and
    is the host's when that operation's launch began after the gap did."""
    lengths: list[float] = []
    host_us = 0.0
    busy_until = ops[0].end
    for start, end, _, _, _, _, correlation in ops:
        if start > busy_until:
            lengths.append(start - busy_until)
            call = api_calls.get(correlation) if correlation is not None else None
            if call is not None and call.start > busy_until:
                host_us += start - busy_until
            busy_until = end
        elif end > busy_until:
            busy_until = end
    total = sum(lengths)
    return GapStats(
        count=len(lengths),
        total_us=total,
        median_us=_median(lengths) if lengths else 0.0,
        max_us=max(lengths, default=0.0),
        host_us=host_us,
        host_share_pct=100.0 * host_us / total if total > 0 else 0.0,
    )


def _median(values: list[float]) -> float:
    """As statistics.median (whose import, with fractions and decimal, costs a small trace's
    analysis several milliseconds)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def is_nccl(kernel_name: str) -> bool:
    return "nccl" in kernel_name.lower()


NO_OPERATORS = "no operator (cpu_op) events in the trace"
OUTSIDE_OPERATORS = "(no operator)"


class HostCalls(NamedTuple):
    cpu_ops: int  # top-level operators: the ones the step called, not those they called
    syncs: int  # synchronizing CUDA calls and blocking copies inside an operator (.item(), .cpu(), nonzero)
    sync_ops: dict[str, int]  # the top-level operator each of them ran in -> count
    operators: tuple[OperatorStat, ...]  # every top-level operator name, by host time, most first


class _TopLevel(NamedTuple):
    starts: list[float]
    ends: list[float]
    names: list[str]

    def enclosing(self, start: float, end: float) -> str | None:
        """The top-level operator whose call holds [start, end], if one does."""
        index = bisect.bisect_right(self.starts, start) - 1
        return self.names[index] if index >= 0 and self.ends[index] >= end else None


def host_calls(trace: Trace) -> HostCalls:
    """What the host did per operator. A synchronize outside any operator is not counted:
    the profiled pass itself synchronizes once to drain its last step."""
    top = _top_level(trace)
    sources: dict[str, int] = {}
    for start, end in [*trace.syncs, *_blocking_copies(trace)]:
        if (name := top.enclosing(start, end)) is not None:
            sources[name] = sources.get(name, 0) + 1
    return HostCalls(len(top.names), sum(sources.values()), dict(sorted(sources.items())), _operators(trace, top))


def _top_level(trace: Trace) -> _TopLevel:
    """The operators not inside another, in start order. Of operators that start together the
    longest is the outer one (the first in the trace of equally long ones); zero-length ones
    at the end of the one before are operators of their own."""
    starts, ends = list(map(intervals.START, trace.ops)), list(map(intervals.END, trace.ops))
    names = trace.op_names
    top = _TopLevel([], [], [])
    top_starts, top_ends, top_names = top
    last_start = last_end = -math.inf  # the last top-level operator's
    # One stable sort on float keys (a trace is mostly in start order already); ties are settled below.
    for i in sorted(range(len(starts)), key=starts.__getitem__):
        start = starts[i]
        if start < last_end and start != last_start:  # inside the last top-level operator: most of them
            continue
        end = ends[i]
        if start == last_start:
            if end > last_end:
                # Longer than the top-level operator it starts with: the outer one. Those it replaces
                # (the one it starts with, and zero-length ones there) are inside it.
                while top_starts and top_starts[-1] == start:
                    top_starts.pop()
                    top_ends.pop()
                    top_names.pop()
            elif start < last_end:
                continue
        top_starts.append(start)
        top_ends.append(end)
        top_names.append(names[i])
        last_start, last_end = start, end
    return top


def _operators(trace: Trace, top: _TopLevel) -> tuple[OperatorStat, ...]:
    """Host time per top-level operator name against the device time of what it launched
    (a device operation belongs to the operator whose call holds its launch)."""
    calls: dict[str, int] = defaultdict(int)
    host: dict[str, float] = defaultdict(float)
    for start, end, name in zip(top.starts, top.ends, top.names, strict=True):
        calls[name] += 1
        host[name] += end - start
    device: dict[str, float] = defaultdict(float)
    api_calls, starts, ends, names = trace.api_calls, top.starts, top.ends, top.names
    for start, end, _, _, _, _, correlation in trace.device_ops:
        launch = api_calls.get(correlation) if correlation is not None else None
        if launch is not None:  # as top.enclosing(launch.start, launch.end), inlined: once per device operation
            index = bisect.bisect_right(starts, launch.start) - 1
            if index >= 0 and ends[index] >= launch.end:
                device[names[index]] += end - start
    stats = [OperatorStat(name, calls[name], host[name], device.get(name, 0.0)) for name in calls]
    stats.sort(key=lambda s: (-s.host_us, s.name))
    return tuple(stats)


def _blocking_copies(trace: Trace) -> list[intervals.Interval]:
    """The host calls of device-to-host copies into pageable memory: such a copy returns only
    once it is done, whatever the call's name says (cudaMemcpyAsync included)."""
    calls = []
    for op in trace.device_ops:
        if op.kind == MEMCPY and "DtoH" in op.name and "Pageable" in op.name and op.correlation is not None:
            call = trace.api_calls.get(op.correlation)
            if call is not None:
                calls.append((call.start, call.end))
    return calls


class Communication(NamedTuple):
    compute_us: float  # union of the device work that is not NCCL
    nccl_union_us: float  # union of NCCL kernels
    overlapped_us: float  # NCCL time with other device work running alongside: hidden
    collectives: tuple[float, ...]  # each NCCL kernel's duration, in the order they started


def _communication(ops: list[DeviceOp], nccl_names: set[str], busy_us: float) -> Communication:
    """Computation against communication on one device. ``nccl_names``: the kernel names
    classified once each, not once per launch; ``ops`` sorted by start; ``busy_us``: the length
    of their union, which is the computation where none is NCCL's (most traces: no second union)."""
    if not nccl_names:
        nothing = intervals.total([])
        return Communication(busy_us, nothing, nothing, ())
    nccl: list[intervals.Interval] = []
    other: list[intervals.Interval] = []
    for op in ops:
        (nccl if op.kind == KERNEL and op.name in nccl_names else other).append((op.start, op.end))
    comm, compute = intervals.merge(nccl), intervals.merge(other)
    overlapped = intervals.total(intervals.intersect(comm, compute))
    collectives = tuple(end - start for start, end in nccl)
    return Communication(intervals.total(compute), intervals.total(comm), overlapped, collectives)


def _kernels_by_name(kernels: list[DeviceOp]) -> dict[str, tuple[int, float]]:
    """name -> (count, summed duration)."""
    counts: dict[str, int] = defaultdict(int)
    totals: dict[str, float] = defaultdict(float)
    for op in kernels:
        counts[op.name] += 1
        totals[op.name] += op.end - op.start
    return {name: (counts[name], totals[name]) for name in counts}


def _top_kernels(by_name: dict[str, tuple[int, float]], kernel_us: float, top: int) -> tuple[KernelStat, ...]:
    ranked = sorted(by_name, key=lambda name: (-by_name[name][1], name))[:top]
    return tuple(
        KernelStat(
            name,
            by_name[name][0],
            by_name[name][1],
            by_name[name][1] / by_name[name][0],
            100.0 * by_name[name][1] / kernel_us if kernel_us > 0 else 0.0,
        )
        for name in ranked
    )


def _copies(ops: list[DeviceOp], kind: str) -> CopyStats:
    durations = [op.end - op.start for op in ops if op.kind == kind]
    return CopyStats(len(durations), sum(durations))


def _allocator_calls(calls: list[ApiCall]) -> AllocationStats:
    durations = [call.end - call.start for call in calls]
    slow = [d for d in durations if d > SLOW_ALLOCATOR_CALL_US]
    return AllocationStats(len(calls), len(slow), max(durations, default=0.0) / 1000.0, sum(slow))
