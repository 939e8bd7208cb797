"""The report in the terminal: the header, the table after the run, a failed test's text."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from pytest_gpuperf.judging.testids import base_test
from pytest_gpuperf.judging.text import count, printable
from pytest_gpuperf.judging.verdict import Verdict
from pytest_gpuperf.measuring.backend import EnvInfo
from pytest_gpuperf.measuring.config import ProtocolConfig
from pytest_gpuperf.measuring.explain import Explanation, MemoryExplanation
from pytest_gpuperf.measuring.hostclock import HOST_CLOCK
from pytest_gpuperf.measuring.ncu import NcuReport
from pytest_gpuperf.measuring.protocol import Measurement
from pytest_gpuperf.report.generation import generation_lines
from pytest_gpuperf.report.rows import Row
from pytest_gpuperf.report.traces import operator_table

MAX_KERNELS_LISTED = 8


def header(
    backend: str, env: EnvInfo, config: ProtocolConfig, *, save_traces: str, flush_l2: bool, note: str | None
) -> list[str]:
    """``backend``: the backend's name (the host clock has nothing to profile)."""
    versions = ", ".join(
        f"{label} {value}"
        for label, value in (("driver", env.driver), ("CUDA", env.cuda), ("torch", env.torch))
        if value
    )
    lines = [f"gpuperf: {env.backend} on {env.device}" + (f" ({versions})" if versions else "")]
    lines.append(
        f"gpuperf: warmup >= {count(config.warmup_calls, 'call')} and {config.warmup_ms:g} ms until steady; "
        f"{config.rounds} rounds of >= {config.round_ms:g} ms (up to {config.max_rounds} near a budget); "
        + _profiling_text(backend, config.profile_steps, save_traces)
        + (f"; host work counted in {count(config.host_work_calls, 'call')}" if config.host_work_calls else "")
        + ("; L2 cleared before each call" if flush_l2 else "")
    )
    if note:
        lines.append(f"gpuperf: {note}")
    return lines


def _profiling_text(backend: str, profile_steps: int, save_traces: str) -> str:
    if backend == HOST_CLOCK:
        return "no profiled pass (the host clock has no GPU to profile)"
    if profile_steps == 0:
        return "no profiled pass (--gpuperf-profile-steps 0)"
    return f"profiled pass of {count(profile_steps, 'step')}; traces kept: {save_traces}"


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


BASELINE_COUNTS = ("regressed", "improved", "same", "inconclusive", "new", "not compared", "unreadable baseline")
HEAD = ("test", "p50 ms", "p99 ms", "GPU active %", "dispatch", "peak MB", "bottleneck", "vs baseline", "verdict")


def table(rows: Sequence[Row], *, lost: Sequence[str], baseline_lines: Sequence[str], updating: bool) -> list[str]:
    """The report's table, one row per measurement (xdist workers' included), and its summary.
    ``lost``: workers that ended without sending results; ``updating``: --gpuperf-update-baselines."""
    lost_lines = [f"gpuperf: {line}" for line in lost]
    if not rows:
        none = "no measured tests (mark tests with gpu_budget or use the gpu_profiler fixture)"
        return [printable(line) for line in [none, *lost_lines]]
    lines = _grid([HEAD, *(_cells(r) for r in rows)])
    lines.append(_summary(rows, updating))
    reasons: dict[tuple[str, str], int] = {}
    for r in rows:
        if r.baseline_status in ("not compared", "unreadable baseline"):
            key = (r.baseline_status, r.baseline_reason)
            reasons[key] = reasons.get(key, 0) + 1
    lines += [f"{status} ({n} test{'s' if n > 1 else ''}): {why}" for (status, why), n in reasons.items()]
    lines += [f"{r.test}: {r.ranks_summary}" for r in rows if r.ranks_summary]
    lines += [f"{r.test}: {r.generation_summary}" for r in rows if r.generation_summary]
    lines += [f"baselines: {line}" for line in baseline_lines]
    return [printable(line) for line in [*lines, *lost_lines]]


def _cells(r: Row) -> tuple[str, ...]:
    return (
        r.test,
        _cell(r.p50_ms, ".4f"),
        _cell(r.p99_ms, ".4f"),
        _cell(r.gpu_active_pct, ".1f"),
        _cell(r.dispatch_ratio, ".2f"),
        _cell(r.peak_mem_mb, ".1f"),
        r.bottleneck or "-",
        r.baseline_summary + (", recorded" if r.recorded else ""),
        r.verdict + (" (throttled)" if r.throttled else ""),
    )


def _grid(rows: list[tuple[str, ...]]) -> list[str]:
    """Numbers right-aligned, words left-aligned, a rule under the head."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:-3], widths[1:-3], strict=True)]
        cells += [row[-3].ljust(widths[-3]), row[-2].ljust(widths[-2]), row[-1]]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("-" * len(lines[0]))
    return lines


def _summary(rows: Sequence[Row], updating: bool) -> str:
    over = sum(1 for r in rows if r.over_budget)
    statuses = [r.baseline_status for r in rows]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in BASELINE_COUNTS if statuses.count(s) or s in ("regressed",))
    recorded = sum(1 for r in rows if r.recorded)
    summary = f"{len(rows)} measured, {over} over budget; against baselines: {counts}"
    if recorded:
        summary += f"; {recorded} recorded"
    elif statuses.count("new") and not updating:
        summary += " (record with --gpuperf-update-baselines)"
    return summary


def short_kernel_name(name: str) -> str:
    """A kernel's function name without its template arguments and parameters:
    ``void at::native::elementwise_kernel<128, 4, ...>(int, ...)`` -> ``at::native::elementwise_kernel<...>``."""
    out, depth = [], 0
    # Anonymous namespaces as the profiler ("(anonymous namespace)") and Nsight Compute ("<unnamed>") spell them.
    for char in name.removeprefix("void ").replace("(anonymous namespace)::", "").replace("<unnamed>::", ""):
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


def shown_kernel_names(names: Sequence[str], width: int = 120) -> dict[str, str]:
    """Each kernel's short name, or, where two share one (two instantiations of one template),
    its full name cut to ``width``: two lines must not read as the same kernel."""
    short = {name: short_kernel_name(name) for name in names}
    counts = Counter(short.values())
    return {
        name: s if counts[s] == 1 else (name if len(name) <= width else name[: width - 3] + "...")
        for name, s in short.items()
    }


def kernel_list(names: Sequence[str], shown: int = MAX_KERNELS_LISTED) -> str:
    """Short names, repeats counted, at most ``shown`` of them (the JSON report has the full names)."""
    counts = Counter(short_kernel_name(n) for n in names)
    items = [f"{n} (x{k})" if k > 1 else n for n, k in sorted(counts.items())]
    more = f", and {len(items) - shown} more (full names in --gpuperf-json)" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def baseline_text(m: Measurement, verdict: Verdict) -> list[str]:
    """Why the baseline gate failed a test, metric by metric, and what to do."""
    c = m.comparison
    problems = verdict.problems
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
    if c.kernel_changes:
        lines.append(
            "    kernels whose GPU time per step moved most (one profiled pass each; they explain gpu_ms_per_step):"
        )
        shown = shown_kernel_names([k.name for k in c.kernel_changes])
        lines += [f"      {k.describe(shown[k.name])}" for k in c.kernel_changes]
    if c.lacking:
        lines.append(f"    not in the baseline, so not judged (re-record it to gate them): {', '.join(c.lacking)}")
    if c.first_attempt:
        lines.append(f"    first measurement: {c.first_attempt}; measured again in this session: the lines above")
    test = base_test(m.test_id)
    lines.append(f'  if the change is intended: pytest --gpuperf --gpuperf-update-baselines "{test}"')
    return lines


COMPILE_FIXES = {
    "graph_breaks_max": (
        "graph_breaks",
        "each break splits the step into graphs run from Python: remove it (keep tensors on the device "
        "instead of .item()/print/data-dependent `if`), or see TORCH_LOGS=graph_breaks",
    ),
    "recompiles_max": (
        "recompiles",
        "a guard failed between calls (a new shape, dtype or Python value): mark the dimension dynamic "
        "(torch._dynamo.mark_dynamic) or keep the value fixed; TORCH_LOGS=recompiles says more",
    ),
    "cudagraph_skips_max": (
        "cudagraph_skips",
        "these graphs run without CUDA graphs under mode='reduce-overhead': remove the reason torch gives "
        "(CPU tensors in the graph, mutated inputs, dynamic shapes)",
    ),
}


def compile_text(m: Measurement, failed: set[str]) -> list[str]:
    """For a failed torch.compile budget: each event, where it happened, and the fix to try."""
    lines = []
    for key, (metric, fix) in COMPILE_FIXES.items():
        events = getattr(m.compiles, metric, ()) if key in failed else ()
        if events:
            lines += [f"    - {event or 'torch gave no reason'}" for event in events]
            lines.append(f"    fix: {fix}")
    return lines


NOTHING_MORE = Explanation()


def failure_text(
    m: Measurement,
    verdict: Verdict,
    *,
    rank: int,
    trace_file: str | None,
    explanation: Explanation = NOTHING_MORE,
    shown: Callable[[Path], str] = str,
) -> str:
    """Why a measured test failed and what to try first. ``trace_file``: where its trace was kept;
    ``explanation``: what was measured again after it failed; ``shown``: a path as the report shows it."""
    rounds = len(m.round_samples_ms)
    what = "gpu_budget failed" if verdict.over_budget else "gpuperf failed"
    lines = [
        f"{what}: {m.test_id}",
        f"  measured with {m.env.backend} on {m.env.device}: {count(rounds, 'round')} x "
        f"{count(m.calls_per_round, 'call')} after {count(m.warmup_calls, 'warmup call')}",
    ]
    if m.ranks is not None:
        lines.append(f"  this is rank {rank}; {m.ranks.describe()}")
    lines += [f"  {b.describe()}" for b in verdict.over_budget]
    if m.generation is not None:
        lines += [f"  {line}" for line in generation_lines(m.generation, m.rounds_info.step_mem_mb)]
    syncs = m.device.sync_ops if m.device is not None else {}
    if syncs and any(b.key == "host_syncs_per_step_max" for b in verdict.over_budget):
        steps = m.device.steps if m.device is not None else 1
        named = ", ".join(f"{name} {n / steps:g}" for name, n in sorted(syncs.items(), key=lambda kv: -kv[1]))
        lines.append(f"    synchronizing calls per step, by the operator that made them: {named}")
    lines += compile_text(m, {b.key for b in verdict.over_budget})
    lines += baseline_text(m, verdict)
    if m.compiled_in_rounds:
        lines.append(
            f"  note: torch.compile compiled {count(m.compiled_in_rounds, 'frame')} during the timed rounds: "
            "their compile time is in the samples (a shape or guard that changes between calls recompiles)"
        )
    if m.rounds_info.throttled:
        lines.append(
            f"  note: the SM clock ran at {m.rounds_info.sm_clock_mhz:.0f} of {m.rounds_info.sm_clock_max_mhz:.0f} MHz "
            "during the rounds (throttled): this timing is not the card's steady state"
        )
    device = m.device
    if device is not None:
        lines += [f"  trace unreliable: {problem.describe()}; those metrics are not judged" for problem in device.trust]
    if device is not None and device.classification is not None:
        c = device.classification
        lines.append(f"bottleneck: {c.kind} ({c.method})")
        lines += [f"  - {e}" for e in c.evidence]
        lines.append(f"try first: {c.fix}")
        if c.kind == "overhead-bound" or any(b.key == "cpu_ops_per_step_max" for b in verdict.over_budget):
            lines += operator_table(device, "  ", shown=5)
    elif m.trace_unavailable:
        lines.append(f"bottleneck: unknown ({m.trace_unavailable})")
    if trace_file is not None:
        lines.append(f"trace: {trace_file} (opens in Perfetto and TensorBoard)")
    lines += memory_text(explanation.memory, shown)
    lines += ncu_text(explanation.ncu, shown)
    return "\n".join(printable(line) for line in lines)


def memory_text(memory: MemoryExplanation | None, shown: Callable[[Path], str]) -> list[str]:
    """Where the memory peak of one more, memory-profiled call came from."""
    if memory is None:
        return []
    lines = memory.peak.lines() if memory.peak is not None else []
    if memory.reason:
        lines.append(f"memory: {memory.reason}")
    if memory.timeline is not None:
        lines.append(f"memory timeline: {shown(memory.timeline)}")
    if memory.trace is not None:
        lines.append(f"memory-profiled trace (allocations, Python stacks): {shown(memory.trace)}")
    return lines


def ncu_text(report: NcuReport | None, shown: Callable[[Path], str], top: int = 5) -> list[str]:
    """The step's top kernels by Nsight Compute's time, with their share of the GPU's peak throughput."""
    if report is None:
        return []
    if not report.kernels:
        return [f"Nsight Compute: {report.reason}"]
    lines = [
        f"Nsight Compute, one call of the step ({count(report.launches, 'kernel launch', 'kernel launches')}; "
        f"ncu replays each with locked clocks), top {min(top, len(report.kernels))} by time:"
    ]
    lines += [f"  {short_kernel_name(k.name)}: {k.describe()}" for k in report.kernels[:top]]
    if report.log is not None:
        lines.append(f"  ncu's table: {shown(report.log)}")
    return lines
