"""Human-readable rendering of analysis results."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_gpuperf.analysis.ranks import RankSpread
from pytest_gpuperf.analysis.results import DeviceMetrics, TraceMetrics
from pytest_gpuperf.judging.testids import base_test
from pytest_gpuperf.judging.text import count, printable
from pytest_gpuperf.measuring.hostclock import HOST_CLOCK

if TYPE_CHECKING:
    from pytest_gpuperf.measuring.protocol import Measurement
    from pytest_gpuperf.session import GpuperfSession

MAX_KERNELS_LISTED = 8


def _num(value: float | None, fmt: str, unavailable: str = "unavailable") -> str:
    return unavailable if value is None else format(value, fmt)


def render_trace(metrics: TraceMetrics) -> str:
    head = f"trace {metrics.source}"
    if metrics.rank is not None:
        head += f" (rank {metrics.rank})"
    head += f": {metrics.steps} profiled step{'s' if metrics.steps != 1 else ''}"
    lines = [head]
    if not metrics.devices:
        lines.append(f"  GPU metrics unavailable: {metrics.host_only_reason}")
        return "\n".join(lines)
    for device in metrics.devices:
        lines.extend(_render_device(device))
    return "\n".join(printable(line) for line in lines)


def _render_device(m: DeviceMetrics) -> list[str]:
    steps = m.steps
    out = [f"device {m.device}" + (f": {m.device_name}" if m.device_name else "")]
    active = _num(None if "gpu_active_pct" in m.unavailable else m.gpu_active_pct, ".2f")
    out.append(f"  GPU active      {active} %  (busy {m.busy_us:.1f} us of a {m.span_us:.1f} us span)")
    ratio = _num(m.dispatch_ratio, ".2f", f"unavailable ({m.unavailable.get('dispatch_ratio', '')})")
    out.append(f"  dispatch ratio  {ratio}")
    out.append(
        f"  kernels         {m.kernels} ({m.kernels / steps:.1f} per step); "
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
        out.append(f"  NCCL            {m.nccl_pct:.2f} % of kernel time ({m.nccl_us:.1f} us{overlap})")
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
    c = m.classification
    if c is not None:
        out.append(f"  bottleneck      {c.kind} ({c.method})")
        out.extend(f"    - {e}" for e in c.evidence)
        out.append(f"    try first: {c.fix}")
        out.extend(f"    also: {s}" for s in c.secondary)
    if m.top_kernels:
        out.append("  top kernels     total us   count    mean us  % kernel  name")
        for k in m.top_kernels:
            name = k.name if len(k.name) <= 90 else k.name[:87] + "..."
            row = f"{k.total_us:10.1f} {k.count:7d} {k.mean_us:10.2f} {k.pct_of_kernel_time:8.1f}%  {name}"
            out.append(" " * 16 + row)
    return out


def render_ranks(spread: RankSpread) -> str:
    lines = [f"ranks {', '.join(map(str, spread.ranks))}: spread between ranks"]
    for s in spread.metrics:
        lines.append(
            f"  {s.metric:18s} min {s.minimum:10.2f} (rank {s.min_rank})  "
            f"max {s.maximum:10.2f} (rank {s.max_rank})  spread {s.spread:.2f}"
        )
    imbalance = _num(spread.nccl_imbalance_pct, ".1f", "no NCCL kernels")
    lines.append(
        f"  NCCL time imbalance (max-min)/max: {imbalance}{' %' if spread.nccl_imbalance_pct is not None else ''}"
    )
    return "\n".join(lines)


# --- pytest --gpuperf: header, table, failure text, JSON -------------------------------------------------


def header(session: GpuperfSession) -> list[str]:
    assert session.backend is not None
    env, s = session.backend.env(), session.settings
    versions = ", ".join(
        f"{label} {value}"
        for label, value in (("driver", env.driver), ("CUDA", env.cuda), ("torch", env.torch))
        if value
    )
    lines = [f"gpuperf: {env.backend} on {env.device}" + (f" ({versions})" if versions else "")]
    lines.append(
        f"gpuperf: warmup >= {count(s.gpuperf_warmup_calls, 'call')} and {s.gpuperf_warmup_ms:g} ms until steady; "
        f"{s.gpuperf_rounds} rounds of >= {s.gpuperf_round_ms:g} ms (up to {s.gpuperf_max_rounds} near a budget); "
        + _profiling_text(session)
        + ("; L2 cleared before each call" if s.gpuperf_flush_l2 else "")
    )
    if session.note:
        lines.append(f"gpuperf: {session.note}")
    return lines


def _profiling_text(session: GpuperfSession) -> str:
    s = session.settings
    if session.backend is not None and session.backend.name == HOST_CLOCK:
        return "no profiled pass (the host clock has no GPU to profile)"
    if s.gpuperf_profile_steps == 0:
        return "no profiled pass (--gpuperf-profile-steps 0)"
    return f"profiled pass of {count(s.gpuperf_profile_steps, 'step')}; traces kept: {s.gpuperf_save_traces}"


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


BASELINE_COUNTS = ("regressed", "improved", "same", "inconclusive", "new", "not compared", "unreadable baseline")


def table(session: GpuperfSession) -> list[str]:
    """The report's table, one row per measurement (xdist workers' included), and its summary."""
    lost = [f"gpuperf: {line}" for line in session.lost]
    results = session.results()
    if not results:
        none = "no measured tests (mark tests with gpu_budget or use the gpu_profiler fixture)"
        return [printable(line) for line in [none, *lost]]
    head = ("test", "p50 ms", "p99 ms", "GPU active %", "dispatch", "peak MB", "bottleneck", "vs baseline", "verdict")
    rows = [head]
    for r in results:
        rows.append(
            (
                r["test"],
                _cell(r["p50_ms"]["value"], ".4f"),
                _cell(r["p99_ms"]["value"], ".4f"),
                _cell(r["trace"]["gpu_active_pct"] if r["trace"] else None, ".1f"),
                _cell(r["trace"]["dispatch_ratio"] if r["trace"] else None, ".2f"),
                _cell(r["peak_mem_mb"], ".1f"),
                r["bottleneck"]["kind"] if r["bottleneck"] else "-",
                r["baseline"]["summary"] + (", recorded" if r["baseline"]["recorded"] else ""),
                r["verdict"] + (" (throttled)" if r["throttled"] else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:-3], widths[1:-3], strict=True)]
        cells += [row[-3].ljust(widths[-3]), row[-2].ljust(widths[-2]), row[-1]]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("-" * len(lines[0]))
    over = sum(1 for r in results if r["over_budget"])
    statuses = [r["baseline"]["status"] for r in results]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in BASELINE_COUNTS if statuses.count(s) or s in ("regressed",))
    recorded = sum(1 for r in results if r["baseline"]["recorded"])
    summary = f"{len(results)} measured, {over} over budget; against baselines: {counts}"
    if recorded:
        summary += f"; {recorded} recorded"
    elif statuses.count("new") and not session.settings.gpuperf_update_baselines:
        summary += " (record with --gpuperf-update-baselines)"
    lines.append(summary)
    reasons: dict[tuple[str, str], int] = {}
    for r in results:
        if r["baseline"]["status"] in ("not compared", "unreadable baseline"):
            key = (r["baseline"]["status"], r["baseline"]["reason"])
            reasons[key] = reasons.get(key, 0) + 1
    lines += [f"{status} ({n} test{'s' if n > 1 else ''}): {why}" for (status, why), n in reasons.items()]
    lines += [f"{r['test']}: {r['ranks']['summary']}" for r in results if r.get("ranks")]
    lines += [f"baselines: {line}" for line in session.baseline_lines]
    return [printable(line) for line in [*lines, *lost]]


def short_kernel_name(name: str) -> str:
    """A kernel's function name without its template arguments and parameters:
    ``void at::native::elementwise_kernel<128, 4, ...>(int, ...)`` -> ``at::native::elementwise_kernel<...>``."""
    out, depth = [], 0
    for char in name.removeprefix("void ").replace("(anonymous namespace)::", ""):
        if char == "(" and depth == 0:
            break
        if char == "<":
            if depth == 0:
                out.append("<...>")
            depth += 1
        elif char == ">" and depth:
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out).strip() or name


def kernel_list(names: Sequence[str], shown: int = MAX_KERNELS_LISTED) -> str:
    """Short names, repeats counted, at most ``shown`` of them (the JSON report has the full names)."""
    counts = Counter(short_kernel_name(n) for n in names)
    items = [f"{n} (x{k})" if k > 1 else n for n, k in sorted(counts.items())]
    more = f", and {len(items) - shown} more (full names in --gpuperf-json)" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def baseline_text(m: Measurement, session: GpuperfSession) -> list[str]:
    """Why the baseline gate failed a test, metric by metric, and what to do."""
    c = m.comparison
    problems = session.problems(m)
    if c is None or not problems:
        return []
    if c.status != "regressed":
        return [f"  {p}" for p in problems]
    lines = [f"  regressed against its baseline {c.baseline_file} (tolerance {c.tolerance_pct:g}%):"]
    lines += [f"    {change.describe()}" for change in c.changes if change.gated and change.outcome != "same"]
    if c.kernels_added:
        lines.append(f"    kernels that appeared: {kernel_list(c.kernels_added)}")
    if c.kernels_removed:
        lines.append(f"    kernels that disappeared: {kernel_list(c.kernels_removed)}")
    if c.first_attempt:
        lines.append(f"    first measurement: {c.first_attempt}; measured again in this session: the lines above")
    test = base_test(m.test_id)
    lines.append(f'  if the change is intended: pytest --gpuperf --gpuperf-update-baselines "{test}"')
    return lines


def failure_text(m: Measurement, session: GpuperfSession) -> str:
    rounds = len(m.round_samples_ms)
    what = "gpu_budget failed" if m.failed else "gpuperf failed"
    lines = [
        f"{what}: {m.test_id}",
        f"  measured with {m.env.backend} on {m.env.device}: {count(rounds, 'round')} x "
        f"{count(m.calls_per_round, 'call')} after {count(m.warmup_calls, 'warmup call')}",
    ]
    if m.ranks is not None:
        lines.append(f"  this is rank {session.rank}; {m.ranks.describe()}")
    lines += [f"  {b.describe()}" for b in m.failed]
    lines += baseline_text(m, session)
    if m.rounds_info.throttled:
        lines.append(
            f"  note: the SM clock ran at {m.rounds_info.sm_clock_mhz:.0f} of {m.rounds_info.sm_clock_max_mhz:.0f} MHz "
            "during the rounds (throttled): this timing is not the card's steady state"
        )
    device = m.device
    if device is not None and device.classification is not None:
        c = device.classification
        lines.append(f"bottleneck: {c.kind} ({c.method})")
        lines += [f"  - {e}" for e in c.evidence]
        lines.append(f"try first: {c.fix}")
    elif m.trace_unavailable:
        lines.append(f"bottleneck: unknown ({m.trace_unavailable})")
    if m.trace_path is not None and session.settings.gpuperf_save_traces != "none":
        lines.append(f"trace: {session.shown(session.trace_target(m))} (opens in Perfetto and TensorBoard)")
    return "\n".join(printable(line) for line in lines)


def measurement_dict(m: Measurement, session: GpuperfSession) -> dict[str, Any]:
    device = m.device
    return {
        "test": m.test_id,
        "env": asdict(m.env),
        "verdict": "FAIL" if session.failing(m) else m.verdict,
        "warmup_calls": m.warmup_calls,
        "calls_per_round": m.calls_per_round,
        "rounds": len(m.round_samples_ms),
        "samples": len(m.samples),
        "p50_ms": asdict(m.p50),
        "p99_ms": asdict(m.p99),
        "mean_ms": m.mean_ms,
        "round_medians_ms": m.round_medians_ms,
        "items": m.items,
        "items_per_s": asdict(m.items_per_s) if m.items_per_s else None,
        "peak_mem_mb": m.rounds_info.peak_mem_mb,
        "new_allocations": m.rounds_info.new_allocations,
        "sm_clock_mhz": m.rounds_info.sm_clock_mhz,
        "sm_clock_max_mhz": m.rounds_info.sm_clock_max_mhz,
        "throttled": m.rounds_info.throttled,
        "budgets": [asdict(b) for b in m.budgets],
        "trace": m.trace.to_dict() if m.trace is not None else None,
        "trace_unavailable": m.trace_unavailable,
        "trace_saved": session.saved_traces.get(id(m)),
        "bottleneck": asdict(device.classification) if device and device.classification else None,
        "wall_s": m.wall_s,
        "round_clock_mhz": list(m.round_clock_mhz),
        "baseline": _baseline_dict(m, session),
        "ranks": _ranks_dict(m),
        "over_budget": bool(m.failed),
        "problems": session.problems(m),
    }


def _ranks_dict(m: Measurement) -> dict[str, Any] | None:
    if m.ranks is None:
        return None
    return {
        "per_rank": [asdict(r) for r in m.ranks.results],
        "slowest_rank": m.ranks.slowest.rank,
        "slowest_p99_ms": m.ranks.slowest.p99_ms,
        "nccl_imbalance_pct": m.ranks.nccl_imbalance_pct,
        "summary": m.ranks.describe(),
    }


def _baseline_dict(m: Measurement, session: GpuperfSession) -> dict[str, Any]:
    c = m.comparison
    if c is None:
        return {"status": "not compared", "summary": "-", "reason": "not compared", "recorded": False}
    out = asdict(c)
    out["summary"] = c.summary()
    # The reason for the verdict: the gated metrics that decided it (empty for same/new).
    out["decided_by"] = [change.describe() for change in c.changes if change.gated and change.outcome == c.status]
    out["recorded"] = session.recorded(m)
    return out


def json_safe(value: Any) -> Any:
    """``value`` with every infinite or NaN float as None: strict JSON has no such numbers
    (a count that grew from 0 has an infinite ratio)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(session: GpuperfSession, path: Path) -> None:
    s = session.settings
    payload = {
        "settings": asdict(s),
        "note": session.note,
        "tests": session.results(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(payload), indent=2, sort_keys=True, allow_nan=False) + "\n")
