"""``gpuperf analyze``'s text: a trace's metrics per device, and the spread between ranks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_gpuperf.analysis.results import DeviceMetrics, OperatorStat, TraceMetrics
from pytest_gpuperf.judging.text import count, printable

if TYPE_CHECKING:  # only annotations: one trace's report does not import the ranks' analysis
    from pytest_gpuperf.analysis.ranks import RankBalance, RankSpread


def _num(value: float | None, fmt: str, unavailable: str = "unavailable") -> str:
    return unavailable if value is None else format(value, fmt)


def _doubt(m: DeviceMetrics, metric: str) -> str:
    """A mark on a figure the trust checks found unreliable (the reason follows, "untrustworthy")."""
    return " (unreliable)" if m.unavailable.get(metric, "").startswith("unreliable") else ""


def render_trace(metrics: TraceMetrics) -> str:
    head = f"trace {metrics.source}"
    if metrics.rank is not None:
        head += f" (rank {metrics.rank})"
    head += f": {metrics.steps} profiled step{'s' if metrics.steps != 1 else ''}"
    lines = [head]
    if not metrics.devices:
        lines.append(f"  GPU metrics unavailable: {metrics.host_only_reason}")
        lines.extend(_render_host(metrics))
        return "\n".join(printable(line) for line in lines)
    for device in metrics.devices:
        lines.extend(_render_device(device))
    return "\n".join(printable(line) for line in lines)


def _render_device(m: DeviceMetrics) -> list[str]:
    steps = m.steps
    out = [f"device {m.device}" + (f": {m.device_name}" if m.device_name else "")]
    doubted = bool(_doubt(m, "gpu_active_pct"))
    active = _num(None if "gpu_active_pct" in m.unavailable and not doubted else m.gpu_active_pct, ".2f")
    span = f"(busy {m.busy_us:.1f} us of a {m.span_us:.1f} us span)"
    out.append(f"  GPU active      {active} %{_doubt(m, 'gpu_active_pct')}  {span}")
    ratio = _num(m.dispatch_ratio, ".2f", f"unavailable ({m.unavailable.get('dispatch_ratio', '')})")
    out.append(f"  dispatch ratio  {ratio}{_doubt(m, 'dispatch_ratio')}")
    out.append(
        f"  kernels         {m.kernels} ({m.kernels / steps:.1f} per step){_doubt(m, 'kernels_per_step')}; "
        f"device ops {m.device_ops}; busy {m.busy_us / steps:.1f} us per step"
    )
    la = m.launches
    out.append(
        f"  launches        runtime {la.runtime}, driver {la.driver}, graph {la.graph}, "
        f"other {la.other}, unmatched ops {la.unmatched_ops}"
    )
    overlap = (
        f", {m.nccl_overlap_pct:.1f}% of it overlapped by other device work" if m.nccl_overlap_pct is not None else ""
    )
    if m.nccl_pct is None:
        out.append(f"  NCCL            unavailable ({m.unavailable.get('nccl_pct', 'no kernel time')})")
    else:
        out.append(
            f"  NCCL            {m.nccl_pct:.2f} % of kernel time{_doubt(m, 'nccl_pct')} ({m.nccl_us:.1f} us{overlap})"
        )
    g = m.gaps
    out.append(
        f"  idle gaps       {g.count}, total {g.total_us:.1f} us, median {g.median_us:.2f} us, "
        f"max {g.max_us:.1f} us; {g.host_share_pct:.0f}% waiting on the host"
    )
    out.append(
        f"  copies          memcpy {m.memcpy.count} ({m.memcpy.total_us:.1f} us), "
        f"memset {m.memset.count} ({m.memset.total_us:.1f} us)"
    )
    for label, calls in (("cudaMalloc", m.allocations), ("cudaFree", m.frees)):
        out.append(f"  {label:15s} {count(calls.calls, 'call')}, {calls.slow} over 1 ms, worst {calls.worst_ms:.3f} ms")
    for problem in m.trust:
        out.append(f"  untrustworthy   {problem.describe()}")
    c = m.classification
    if c is not None:
        out.append(f"  bottleneck      {c.kind} ({c.method})")
        out.extend(f"    - {e}" for e in c.evidence)
        out.append(f"    try first: {c.fix}")
        out.extend(f"    also: {s}" for s in c.secondary)
    out.extend(operator_table(m, "  "))
    if m.top_kernels:
        out.append("  top kernels     total us   count    mean us  % kernel  name")
        for k in m.top_kernels:
            name = k.name if len(k.name) <= 90 else k.name[:87] + "..."
            row = f"{k.total_us:10.1f} {k.count:7d} {k.mean_us:10.2f} {k.pct_of_kernel_time:8.1f}%  {name}"
            out.append(" " * 16 + row)
    return out


def operator_table(m: DeviceMetrics, indent: str, shown: int = 10) -> list[str]:
    """The top-level operators by host time per step, against the device time they launched:
    where the host time of a host-bound step goes (host far above device: dispatch-heavy)."""
    return _operators(m.top_operators, m.steps, indent, shown)


def _operators(operators: tuple[OperatorStat, ...], steps: int, indent: str, shown: int = 10) -> list[str]:
    if not operators:
        return []
    out = [f"{indent}top operators by host time, per step:  host us  device us  calls  name"]
    for o in operators[:shown]:
        name = o.name if len(o.name) <= 70 else o.name[:67] + "..."
        out.append(
            f"{indent}{'':38s}{o.host_us / steps:8.1f} {o.device_us / steps:10.1f} {o.calls / steps:6.1f}  {name}"
        )
    return out


def _render_host(metrics: TraceMetrics) -> list[str]:
    """What a trace without device work holds: its host's busy time and operators."""
    host, steps = metrics.host, max(metrics.steps, 1)
    if host is None:
        return []
    return [
        f"host: {host.busy_us / steps:.1f} us busy per step (operators, runtime and driver calls, merged), "
        f"{host.cpu_ops / steps:.1f} top-level operators per step",
        *_operators(host.top_operators, steps, "  "),
    ]


def render_ranks(spread: RankSpread, found: RankBalance | None = None) -> str:
    lines = [f"ranks {', '.join(map(str, spread.ranks))}: spread between ranks"]
    for s in spread.metrics:
        lines.append(
            f"  {s.metric:19s} min {s.minimum:10.2f} (rank {s.min_rank})  "
            f"max {s.maximum:10.2f} (rank {s.max_rank})  spread {s.spread:.2f}"
        )
    imbalance = _num(spread.nccl_imbalance_pct, ".1f", "no NCCL kernels")
    lines.append(
        f"  NCCL time imbalance (max-min)/max: {imbalance}{' %' if spread.nccl_imbalance_pct is not None else ''}"
    )
    if found is not None:
        lines.append(f"  {found.describe()}")
        lines.append("  per step (us)        compute      NCCL   exposed   waiting")
        for r in found.ranks:
            lines.append(
                f"    rank {r.rank:<12d}{r.compute_us:10.1f}{r.nccl_us:10.1f}{r.exposed_us:10.1f}{r.wait_us:10.1f}"
            )
    return "\n".join(printable(line) for line in lines)


def balance_json(found: RankBalance | None) -> dict[str, Any] | None:
    """The rank that computes most (``straggler_rank``), the one the others wait for in the
    collectives (``late_rank``: the same one, unless a rank's host makes it late), each rank's wait."""
    if found is None:
        return None
    return {
        "straggler_rank": found.straggler_rank,
        "late_rank": found.late_rank,
        "compute_imbalance_pct": found.compute_imbalance_pct,
        "collectives_matched": found.matched,
        "per_rank": [r._asdict() for r in found.ranks],
        "note": found.note,
        "summary": found.describe(),
    }
