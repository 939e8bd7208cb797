"""Name the bottleneck of one device's step, with its evidence and the fix to try first.

The rules run in order and the first that fires is the class; the others that
fire are kept as secondary findings. Thresholds are module constants so the
report can quote them:

1. allocation stalls: cudaMalloc/cudaFree calls over 1 ms take >= 10% of the device span.
2. overhead-bound: each host launch gives the GPU under 5 us of work (GPU busy time per
   step over launches per step): no eager host issues work that fast, so the GPU waits.
   mixed: 5-50 us per launch, about what a host takes to issue one: which side paces the
   step depends on the host's speed that day (ResNet-50 eager on an H200: the GPU waited
   9% of the step in one process, 57% in the next), so the answer names both the host part
   and the device class below. GPU time per launch does not move with the host; the share
   of the step the GPU waited (host wait) does, so it only has to show that the host is
   involved at all (>= 5% of the step): a step whose small kernels were all launched ahead
   (idle gaps the host did not cause) is not blamed on the host.
3. rank imbalance (with every rank's trace, or under torchrun): this rank waits inside NCCL
   collectives for a slower rank >= 10% of the device span (each collective's time beyond
   the fastest rank's for the same collective): the fix is balancing work, not overlap.
   communication-bound: exposed communication (NCCL time with no other device work
   alongside, less the waiting where it is known) >= 10% of the device span. NCCL time
   hidden behind computation costs nothing and is reported as overlapped.
4. memory-bound by copies: memcpy and memset take >= 50% of the summed device time.
5. compute- vs memory-bound: a roofline when the trace carries FLOPs and input
   shapes of a known GPU (arithmetic intensity against the ridge point); else the
   share of kernel time in GEMM kernels (>= 50%: compute), labelled a heuristic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from pytest_gpuperf.analysis.devices import peak_for
from pytest_gpuperf.analysis.results import Bottleneck

if TYPE_CHECKING:
    from pytest_gpuperf.analysis.results import DeviceMetrics
    from pytest_gpuperf.analysis.trace import FlopOp

ALLOCATION_STALL_PCT = 10.0
OVERHEAD_LAUNCH_US = 5.0  # GPU work per launch below this: host-bound on any host
MIXED_LAUNCH_US = 50.0  # below this: host and GPU take about as long per launch
HOST_WAIT_NOTE_PCT = 25.0  # a device-bound step that still waited this much says so
HOST_INVOLVED_PCT = 5.0  # the GPU waited at least this share of the step for the host
COMMUNICATION_PCT = 10.0
GEMM_SHARE_PCT = 50.0
COPY_SHARE_PCT = 50.0
ELEMENTWISE_SHARE_PCT = 30.0

_GEMM = re.compile(r"gemm|cutlass|cublas|nvjet|xmma|wgmma|matmul|s1688|s16816|hmma|triton_tem", re.IGNORECASE)

# rank-imbalance where the rank the others wait for does not compute more: its host is slower.
LATE_HOST_FIX = (
    "speed up rank {rank}'s host side, which the others wait for inside every collective: its own "
    "bottleneck names it (kernel launches, data loading, a busy or slower CPU); its computation is only "
    "{pct:.0f}% over the fastest rank's"
)
FIXES = {
    "allocation-stalls": (
        "preallocate: a paged KV-cache block pool and static buffers allocated once, before the loop; "
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True against fragmentation"
    ),
    "overhead-bound": "capture the step as a CUDA graph (torch.cuda.CUDAGraph, replayed with static inputs)",
    "communication-bound": (
        "overlap communication with computation (async collectives, bucketing), or use a smaller tensor-parallel degree"
    ),
    "rank-imbalance": (
        "balance the work across ranks: rank {rank} computes {pct:.0f}% longer per step than the fastest "
        "(its share of layers, batch or sequence lengths), and the others wait for it inside every collective"
    ),
    "compute-bound": "use quantized/FP8 GEMMs (a higher math ceiling), then check the GEMM tile shapes",
}
# Memory-bound: the remedies for what the step runs, each only where its operators are there
# (a CNN told to try grouped-query attention had been given a decoder's remedies).
MEMORY_FIXES = (
    ("weights", "quantized weights (int8/int4/FP8) for its matrix multiplies"),
    ("attention", "grouped-query attention and an FP8 KV cache for its attention"),
    ("convolution", "channels-last bf16 activations, batch norm folded into the convolutions (torch.compile)"),
    ("elementwise", "fused elementwise kernels (torch.compile), so intermediates stay on the chip"),
)
MEMORY_FIX_FALLBACK = "lower-precision tensors, and fused kernels (torch.compile) so intermediates stay on the chip"
_ATTENTION = re.compile(r"attention|attn|flash|fmha|sdpa|softmax", re.IGNORECASE)
_CONVOLUTION = re.compile(r"conv(?!ert)|implicit_?gemm|winograd|batch_?norm|bn_fw", re.IGNORECASE)
COPY_FIX = (
    "keep data on the device between steps; where a transfer is needed, use pinned memory and "
    "non_blocking copies on a side stream so they overlap compute"
)
FUSE_FIX = "then torch.compile the step to fuse its {n} small elementwise kernels"


Finding = tuple[str, str, tuple[str, ...]]  # (kind, method, evidence)


def is_gemm(kernel_name: str) -> bool:
    return _GEMM.search(kernel_name) is not None


def is_elementwise(kernel_name: str) -> bool:
    return "elementwise" in kernel_name


def device_fixes(m: DeviceMetrics, kind: str) -> str:
    """The fix for a compute- or memory-bound step; a memory-bound one's from its own operators."""
    if kind != "memory-bound":
        return FIXES[kind]
    names = [*m.kernel_counts, *(op.name for op in m.top_operators)]
    present = {
        "weights": m.gemm_us > 0,
        "attention": any(_ATTENTION.search(n) for n in names),
        "convolution": any(_CONVOLUTION.search(n) for n in names),
        "elementwise": m.kernels > 0 and 100.0 * m.elementwise_kernels / m.kernels >= ELEMENTWISE_SHARE_PCT,
    }
    chosen = [fix for what, fix in MEMORY_FIXES if present[what]]
    return "move fewer bytes: " + ("; ".join(chosen) if chosen else MEMORY_FIX_FALLBACK)


def idle_pct(m: DeviceMetrics, step_ms: float | None) -> float:
    """The share of a step the GPU is idle. With ``step_ms`` (timed without the profiler):
    the trace's busy time per step against it, since the profiler slows the host and widens
    a profiled trace's gaps (DESIGN.md); without, the trace's own idle share."""
    if step_ms:
        return max(0.0, 100.0 - 100.0 * m.busy_us_per_step / (step_ms * 1000.0))
    return 100.0 - m.gpu_active_pct


def host_wait_pct(m: DeviceMetrics, step_ms: float | None) -> float:
    """The share of a step the GPU waits for the host: idle time whose next launch came after
    the gap began. It decides both the class and whether latency can be gated (compare.py)."""
    if m.span_us <= 0:
        return 0.0
    return idle_pct(m, step_ms) * m.gaps.host_share_pct / 100.0


def gpu_us_per_launch(m: DeviceMetrics) -> float:
    """GPU busy time per host launch (a CUDA graph replay is one launch): a property of the
    step's kernels, the same on a slow host and a fast one."""
    return m.busy_us_per_step / max(m.launches_per_step, 1.0)


class RankWait(NamedTuple):
    """What the other ranks' traces say about this one's NCCL time."""

    wait_us: float  # NCCL time beyond the fastest rank's for the same collectives, over the trace
    late_rank: int  # the rank the others wait for (it waits least)
    late_excess_pct: float  # its computation per step over the fastest rank's, in percent
    by_computation: bool  # it is late for its computation (the straggler, imbalanced): else its host


def classify(m: DeviceMetrics, step_ms: float | None = None, ranks: RankWait | None = None) -> Bottleneck:
    """From the metrics alone, not the raw trace. ``step_ms``: the step's latency timed without
    the profiler, when known (see idle_pct); ``ranks``: this rank's wait for the others, where
    every rank's trace or figures are known."""
    findings: list[Finding] = []
    span = m.span_us

    allocs, frees = m.allocations, m.frees
    stall_pct = 100.0 * m.allocator_stall_us / span if span > 0 else 0.0
    if allocs.slow + frees.slow and stall_pct >= ALLOCATION_STALL_PCT:
        stall_evidence = (
            f"allocator calls over 1 ms take {stall_pct:.1f}% of the step: {allocs.slow} cudaMalloc "
            f"(worst {allocs.worst_ms:.2f} ms), {frees.slow} cudaFree (worst {frees.worst_ms:.2f} ms)",
        )
        findings.append(("allocation-stalls", "trace", stall_evidence))

    waiting = host_wait_pct(m, step_ms)
    per_launch = gpu_us_per_launch(m)
    source = (
        f"GPU busy {m.busy_us_per_step / 1000:.3f} ms of the {step_ms:.3f} ms step timed without the profiler"
        if step_ms
        else "in the trace"
    )
    host_evidence: tuple[str, ...] = (
        f"each launch gives the GPU {per_launch:.1f} us of work ({m.busy_us_per_step:.0f} us busy over "
        f"{m.launches_per_step:.0f} launches per step)",
        f"GPU idle {idle_pct(m, step_ms):.1f}% of the step ({source}); {m.gaps.host_share_pct:.0f}% of the idle "
        f"time waits for the host to launch the next kernel ({m.gaps.count} gaps, median "
        f"{m.gaps.median_us:.1f} us): in this run the GPU waited for the host {waiting:.0f}% of the step",
    )
    if m.dispatch_ratio is not None:
        host_evidence += (f"dispatch ratio {m.dispatch_ratio:.2f} (host time per unit of GPU busy time)",)
    involved = span > 0 and waiting >= HOST_INVOLVED_PCT
    if involved and per_launch < OVERHEAD_LAUNCH_US:
        findings.append(("overhead-bound", "trace", host_evidence))

    communication = _communication(m, ranks)
    findings += communication.findings

    device_kind, device_method, device_evidence = _compute_or_memory(m)
    device_fix = COPY_FIX if device_evidence[0].startswith("copies take") else device_fixes(m, device_kind)
    if involved and OVERHEAD_LAUNCH_US <= per_launch < MIXED_LAUNCH_US:
        findings.append(
            (
                "mixed",
                "trace",
                (
                    *host_evidence,
                    f"the GPU's own time is {device_kind} ({device_method}): {'; '.join(device_evidence)}",
                ),
            )
        )
    findings.append((device_kind, device_method, device_evidence))
    if (per_launch >= MIXED_LAUNCH_US or not involved) and waiting >= HOST_WAIT_NOTE_PCT:
        findings.append(("host waits", "trace", host_evidence[1:2]))
    findings += communication.notes

    kind, method, evidence = findings[0]
    host_fix = FIXES["overhead-bound"]
    if m.kernels and 100.0 * m.elementwise_kernels / m.kernels >= ELEMENTWISE_SHARE_PCT:
        host_fix = f"{host_fix}; {FUSE_FIX.format(n=m.elementwise_kernels)}"
    if kind == "overhead-bound":
        fix = host_fix
    elif kind == "mixed":
        fix = f"for the host's part, {host_fix}; for the GPU's ({device_kind}), {device_fix}"
    elif kind == device_kind:
        fix = device_fix
    elif kind == "rank-imbalance" and ranks is not None:
        fix = (FIXES[kind] if ranks.by_computation else LATE_HOST_FIX).format(
            rank=ranks.late_rank, pct=ranks.late_excess_pct
        )
    else:
        fix = FIXES[kind]
    secondary = tuple(f"{k}: {'; '.join(e)}" for k, _, e in findings[1:] if k != device_kind or kind != "mixed")
    return Bottleneck(kind, method, evidence, fix, secondary)


class _Communication(NamedTuple):
    findings: list[Finding]  # classes: rank-imbalance, communication-bound
    notes: list[Finding]  # secondary only: communication overlapped


def _communication(m: DeviceMetrics, ranks: RankWait | None) -> _Communication:
    """Only NCCL time that nothing hides costs the step, and of that, time spent waiting for a
    slower rank is the slower rank's to fix."""
    span = m.span_us
    if m.nccl_pct is None or m.nccl_us <= 0 or span <= 0:
        return _Communication([], [])
    findings: list[Finding] = []
    wait = min(ranks.wait_us, m.nccl_exposed_us) if ranks is not None else 0.0
    steps = max(m.steps, 1)
    if ranks is not None and 100.0 * wait / span >= COMMUNICATION_PCT:
        findings.append(
            (
                "rank-imbalance",
                "ranks",
                (
                    f"this rank waits inside NCCL collectives for a slower rank {100.0 * wait / span:.1f}% of the "
                    f"step ({wait / steps:.0f} us per step beyond the fastest rank's time for the same collectives)",
                    f"straggler: rank {ranks.late_rank}, whose computation per step is {ranks.late_excess_pct:.0f}% "
                    "longer than the fastest rank's"
                    if ranks.by_computation
                    else f"the others wait for rank {ranks.late_rank}, whose computation per step is only "
                    f"{ranks.late_excess_pct:.0f}% over the fastest rank's: its host makes it late",
                ),
            )
        )
    transfer = m.nccl_exposed_us - wait
    overlap = m.nccl_overlap_pct if m.nccl_overlap_pct is not None else 0.0
    shares = f"NCCL kernels take {m.nccl_pct:.1f}% of kernel time, {overlap:.0f}% of it overlapped by computation"
    if 100.0 * transfer / span >= COMMUNICATION_PCT:
        evidence: tuple[str, ...] = (f"exposed communication {100.0 * transfer / span:.1f}% of the step ({shares})",)
        if ranks is None:
            evidence += (
                "one rank's trace: its NCCL time includes any wait for slower ranks "
                "(gpuperf analyze with every rank's trace tells the two apart)",
            )
        findings.append(("communication-bound", "trace", evidence))
        return _Communication(findings, [])
    if m.nccl_pct >= COMMUNICATION_PCT:
        note = f"{shares}: exposed {100.0 * m.nccl_exposed_us / span:.1f}% of the step"
        if ranks is not None and wait > 0:
            note += f", {100.0 * wait / span:.1f}% of it waiting for rank {ranks.late_rank}"
        label = "communication overlapped" if overlap >= 50.0 else "communication"
        return _Communication(findings, [(label, "trace", (note,))])
    return _Communication(findings, [])


def dominant_element_size(flop_ops: Iterable[FlopOp]) -> int | None:
    """The operand size (bytes) of the operators that carry most FLOPs; None without any."""
    by_size: dict[int, float] = {}
    for op in flop_ops:
        by_size[op.element_size] = by_size.get(op.element_size, 0.0) + op.flops
    return max(by_size, key=lambda s: by_size[s]) if by_size else None


def _compute_or_memory(m: DeviceMetrics) -> Finding:
    copy_us = m.memcpy.total_us + m.memset.total_us
    device_us = m.kernel_us + copy_us
    if device_us > 0 and 100.0 * copy_us / device_us >= COPY_SHARE_PCT:
        return (
            "memory-bound",
            "trace",
            (
                f"copies take {100.0 * copy_us / device_us:.1f}% of device time "
                f"(memcpy {m.memcpy.count} ops, {m.memcpy.total_us:.1f} us; memset {m.memset.count} ops)",
            ),
        )
    peak = peak_for(m.device_name)
    element_size = m.flop_element_size
    if peak is not None and m.flops > 0 and m.flop_bytes > 0 and element_size is not None:
        ridge = peak.ridge_flop_per_byte(element_size)
        intensity = m.flops / m.flop_bytes
        kind = "compute-bound" if intensity >= ridge else "memory-bound"
        roofline = (
            f"arithmetic intensity {intensity:.1f} FLOP/byte against the {peak.name} ridge point "
            f"{ridge:.0f} FLOP/byte ({element_size}-byte operands, datasheet peaks)",
            f"{m.flops / 1e9:.2f} GFLOP over {m.busy_us:.0f} us busy: "
            f"{m.flops / m.busy_us / 1e6 if m.busy_us else 0.0:.1f} TFLOP/s achieved",
        )
        return kind, "roofline", roofline
    gemm_pct = 100.0 * m.gemm_us / m.kernel_us if m.kernel_us > 0 else 0.0
    kind = "compute-bound" if gemm_pct >= GEMM_SHARE_PCT else "memory-bound"
    why = "no FLOP counts in the trace" if m.flops <= 0 else f"no peak rates known for {m.device_name or 'this GPU'}"
    return kind, "heuristic", (f"GEMM kernels take {gemm_pct:.1f}% of kernel time (heuristic: {why}, so no roofline)",)
