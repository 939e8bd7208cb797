"""Whether a profiled trace can be believed, checked on every profiled pass.

Profiler traces go wrong in known ways: kernels of CUDA-graph replays under-recorded (a
saturated GPU then looks mostly idle), work from before the capture window left in it,
operations on one stream that overlap (a stream runs one at a time: the timestamps are off;
only a dependent kernel's early start may overlap the end of the kernel before it),
and device work whose launch the correlation join cannot find. Each problem names the
metrics it makes unreliable; those are reported with the reason and never judged.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

from pytest_gpuperf.analysis.intervals import START
from pytest_gpuperf.analysis.results import DeviceMetrics, TrustProblem
from pytest_gpuperf.analysis.trace import KERNEL, ApiCall, DeviceOp

# Device busy time above the step timed without the profiler by more than this: the trace holds
# work that is not the step's (or the timing misses work on another stream). Kernels run as long
# under the profiler as without it, so an honest trace stays below the step.
BUSY_OVER_STEP = 1.25
OVERLAP_SLACK_US = 0.01  # timestamps carry nanoseconds: a smaller overlap is rounding
EARLY_START_SHARE = 0.25  # a dependent kernel's early start overlaps at most this share of either kernel

# What each problem makes unreliable (keys of DeviceMetrics' figures and of budgets' metrics).
_BUSY = ("gpu_active_pct", "dispatch_ratio", "host_wait_pct")
_COUNTS = ("kernels_per_step", "launches_per_step", "kernel_us")


def _early_start(before: DeviceOp, op: DeviceOp) -> bool:
    """A kernel that began in the last part of the kernel before it and ended after it: a
    programmatic dependent launch (Hopper on; cuBLASLt's split-K reduce after its GEMM) runs
    its prologue while the kernel it depends on finishes. A kernel inside another, or an
    overlap of most of either, is no such start."""
    if before.kind != KERNEL or op.kind != KERNEL or op.end <= before.end:
        return False
    overlap = before.end - op.start
    return overlap <= EARLY_START_SHARE * min(before.end - before.start, op.end - op.start)


def unreliable(problems: tuple[TrustProblem, ...]) -> dict[str, str]:
    """Each unreliable metric with the reason, as DeviceMetrics.unavailable holds it."""
    reasons: dict[str, str] = {}
    for problem in problems:
        for metric in problem.unreliable:
            reasons.setdefault(metric, f"unreliable trace: {problem.detail}")
    return reasons


def trust_problems(
    m: DeviceMetrics,
    ops: list[DeviceOp],
    api_calls: dict[int, ApiCall],
    launched: set[int],
    window: tuple[float, float] | None,
    step_ms: float | None,
) -> tuple[TrustProblem, ...]:
    """The problems of one device's part of a trace. ``ops``: its device operations sorted by
    start; ``launched``: the correlation ids of the whole trace's device operations;
    ``window``: the profiled steps' span on the host, where the trace marks steps;
    ``step_ms``: the step timed without the profiler, where known."""
    problems = [
        *_graph_replays(api_calls, launched),
        *_busy_against_step(m, step_ms),
        *_outside_window(ops, api_calls, window),
        *_stream_overlaps(ops),
    ]
    if m.launches.unmatched_ops:
        problems.append(
            TrustProblem(
                "unmatched-launches",
                f"{m.launches.unmatched_ops} device operations match no launch on the host (correlation ids "
                "missing or dropped): launches and the host's share of idle time are undercounted",
                ("launches_per_step", "host_wait_pct"),
            )
        )
    return tuple(problems)


def _graph_replays(api_calls: dict[int, ApiCall], launched: set[int]) -> list[TrustProblem]:
    """CUDA-graph launches none of whose work is in the trace. ``launched``: the correlation
    ids of every device operation of the trace (a graph may run on another device)."""
    graph_launches = {corr for corr, call in api_calls.items() if "GraphLaunch" in call.name}
    missing = len(graph_launches - launched)
    if not missing:
        return []
    return [
        TrustProblem(
            "graph-under-recorded",
            f"{missing} of {len(graph_launches)} CUDA-graph launches have no device operations in the trace: "
            "the replays' kernels were under-recorded",
            (*_BUSY, *_COUNTS),
        )
    ]


def _busy_against_step(m: DeviceMetrics, step_ms: float | None) -> list[TrustProblem]:
    if step_ms is None or step_ms <= 0 or m.busy_us_per_step <= BUSY_OVER_STEP * step_ms * 1000.0:
        return []
    return [
        TrustProblem(
            "busy-over-step",
            f"the GPU is busy {m.busy_us_per_step / 1000:.4g} ms per profiled step, more than the {step_ms:.4g} ms "
            "step timed without the profiler: the trace holds work that is not the step's, or the timing misses "
            "work on another stream",
            _BUSY,
        )
    ]


def _outside_window(
    ops: list[DeviceOp], api_calls: dict[int, ApiCall], window: tuple[float, float] | None
) -> list[TrustProblem]:
    """Device work that began before the first profiled step, or was launched after the last."""
    if window is None:
        return []
    first, last = window
    before = bisect_left(ops, first, key=START)  # ops are sorted by start
    after = sum(
        1
        for op in ops
        if op.correlation is not None and (call := api_calls.get(op.correlation)) is not None and call.start > last
    )
    if not before and not after:
        return []
    parts = [f"{before} began before the first profiled step"] if before else []
    parts += [f"{after} were launched after the last"] if after else []
    return [
        TrustProblem(
            "outside-window",
            f"device operations outside the profiled steps: {' and '.join(parts)}",
            (*_BUSY, *_COUNTS, "nccl_pct"),
        )
    ]


def _stream_overlaps(ops: list[DeviceOp]) -> list[TrustProblem]:
    """Operations that overlap on one stream, which runs one at a time (but for a dependent
    kernel's early start)."""
    last: dict[tuple[int, int], DeviceOp] = {}
    overlaps: dict[tuple[int, int], int] = defaultdict(int)
    for op in ops:  # sorted by start
        key = (op.device, op.stream)
        before = last.get(key)
        if before is not None and op.start < before.end - OVERLAP_SLACK_US and not _early_start(before, op):
            overlaps[key] += 1
        if before is None or op.end > before.end:
            last[key] = op
    if not overlaps:
        return []
    worst = max(overlaps, key=lambda k: (overlaps[k], k))
    return [
        TrustProblem(
            "stream-overlap",
            f"{sum(overlaps.values())} device operations overlap an earlier one on the same stream "
            f"({overlaps[worst]} on stream {worst[1]}): a stream runs one at a time, so their timestamps are off",
            ("nccl_pct", "kernel_us"),
        )
    ]
