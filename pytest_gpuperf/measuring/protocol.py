"""The measurement protocol (DESIGN.md), independent of how a call is timed.

1. Warmup until steady: at least N calls and a minimum time, then until two
   successive warmup chunks agree within 5% (or 4x the minimum time has passed).
2. Timed rounds without the profiler: the backend times each call (a CUDA event
   pair on the GPU) and synchronizes once per round. Each round's median is kept.
3. While a latency budget's interval straddles its limit, more rounds, up to a cap.
4. One short profiled pass whose trace feeds the analysis core.

A backend supplies the timing, memory, clock and profiling; the CUDA one lives in
``pytest_gpuperf.cuda``, the only package that imports torch.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pytest_gpuperf.analysis.bottleneck import gpu_us_per_launch
from pytest_gpuperf.analysis.load import load
from pytest_gpuperf.analysis.metrics import analyze
from pytest_gpuperf.analysis.ranks import RanksReport, reclassified
from pytest_gpuperf.analysis.results import DeviceMetrics, TraceMetrics
from pytest_gpuperf.analysis.trace import TraceFormatError
from pytest_gpuperf.errors import GpuperfError
from pytest_gpuperf.judging.budget import KEYS, UNDECIDED, BudgetResult, judge, settle
from pytest_gpuperf.judging.compare import (
    INCONCLUSIVE,
    REGRESSED,
    SIDE_CONFIDENCE,
    Comparison,
    compare,
    host_paced,
    latency_change,
)
from pytest_gpuperf.judging.entry import COMPILE_EVENT_KINDS, Entry, Rounds
from pytest_gpuperf.judging.registry import COMPILE, HOST, MEMORY, METRICS, NUMBER, POSITIVE, TRACE, kept
from pytest_gpuperf.judging.stats import Estimate, quantile_interval
from pytest_gpuperf.measuring.backend import Backend, CompileLog, CompileWatch, EnvInfo, RoundsInfo
from pytest_gpuperf.measuring.config import ProtocolConfig
from pytest_gpuperf.measuring.consensus import ALONE, Consensus
from pytest_gpuperf.measuring.generation import Generation, GenerationStats, generation_stats
from pytest_gpuperf.measuring.hostclock import HOST_CLOCK
from pytest_gpuperf.measuring.hostwork import HostWork, count_host_work

STEADY_TOLERANCE = 0.05
WARMUP_CAP_FACTOR = 4.0
MIN_CALLS_PER_ROUND = 5


@dataclass(frozen=True)
class Measurement:
    test_id: str
    env: EnvInfo
    warmup_calls: int
    calls_per_round: int
    round_samples_ms: tuple[tuple[float, ...], ...]
    p50: Estimate
    p99: Estimate
    mean_ms: float
    rounds_info: RoundsInfo
    items: float | None = None
    trace: TraceMetrics | None = None
    trace_path: str | None = None
    trace_unavailable: str | None = None
    budgets: tuple[BudgetResult, ...] = ()
    wall_s: float = 0.0
    round_clock_mhz: tuple[float, ...] = ()  # empty where the clock could not be read
    comparison: Comparison | None = None  # against the baseline; None: gpuperf compared nothing
    ranks: RanksReport | None = None  # every rank's figures, under torchrun
    compiles: CompileLog | None = None  # what torch.compile did during the test's calls; None: not read
    compiled_in_rounds: int = 0  # compilations during the timed rounds: their time is in the samples
    generation: GenerationStats | None = None  # gpu_profiler.generate: the timed calls' requests and tokens
    host_work: HostWork | None = None  # Python lines and calls of the counted calls; None: not counted

    @property
    def device(self) -> DeviceMetrics | None:
        """The profiled trace's primary device, if there is a trace."""
        return self.trace.primary if self.trace is not None else None

    @property
    def samples(self) -> list[float]:
        return [t for r in self.round_samples_ms for t in r]

    @property
    def round_medians_ms(self) -> list[float]:
        return [statistics.median(r) for r in self.round_samples_ms]

    @property
    def items_per_s(self) -> Estimate | None:
        return throughput(self.items, self.p50) if self.items else None

    @property
    def entry(self) -> Entry:
        """This measurement as a baseline entry (and as what is compared with one)."""
        device = self.device
        samples = self.samples
        p99 = quantile_interval(samples, 0.99, SIDE_CONFIDENCE)
        counted = _trace_figure(device, "kernels_per_step") is not None
        timed = _trace_figure(device, "kernel_us") is not None
        values: dict[str, Any] = {
            "samples": len(samples),
            "p50_ms": self.p50.value,
            "p99_ms": self.p99.value,
            "p99_ci_ms": (p99.low, p99.high),
            "round_medians_ms": tuple(self.round_medians_ms),
            "round_clock_mhz": self.round_clock_mhz,
            "items_per_s": self.items_per_s.value if self.items_per_s else None,
            "gpu_us_per_launch": _per_launch(device),
            "kernels": {n: c / device.steps for n, c in device.kernel_counts.items()} if device and counted else {},
            "kernel_us": {n: us / device.steps for n, us in device.kernel_time_us.items()} if device and timed else {},
            "sync_ops": {name: n / device.steps for name, n in device.sync_ops.items()} if device else {},
            "compile_events": compile_events(self.compiles),
            **_generation_entry(self.generation),
            **_host_entry(self.host_work),
        }
        for metric in METRICS:
            if metric.name in values or not kept(metric) or metric.shape not in (NUMBER, POSITIVE):
                continue
            if metric.source == TRACE:
                values[metric.name] = _trace_figure(device, metric.name)
            elif metric.source == MEMORY:
                values[metric.name] = memory_figure(metric.name, self.rounds_info, len(samples))
            elif metric.source == COMPILE:
                values[metric.name] = compile_figure(self.compiles, metric.name)[0]
        return Entry.of(**values)

    @property
    def new_allocs_per_step(self) -> float | None:
        """Device allocations (new cudaMalloc segments) per timed call, after warmup."""
        return memory_figure("new_allocs_per_step", self.rounds_info, len(self.samples))


NOTHING_COMPILED = (
    "nothing was compiled during this test's calls: graph breaks and CUDA-graph skips are counted where the "
    "step compiles (a step compiled before the test, in a fixture or an earlier test, shows none)"
)


def _generation_entry(g: GenerationStats | None) -> dict[str, Any]:
    """A generation's baseline figures: prefill (TTFT) and decode (TPOT) apart, each call's median."""
    if g is None:
        return {}
    return {
        "ttft_ms": g.ttft_ms.at(0.5).value,
        "tpot_ms": g.tpot_ms.at(0.5).value if g.tpot_ms is not None else None,
        "tokens_per_s": g.tokens_per_s.value if g.tokens_per_s is not None else None,
        "ttft_per_call_ms": g.ttft_per_call_ms,
        "tpot_per_call_ms": g.tpot_per_call_ms,
    }


def _host_entry(work: HostWork | None) -> dict[str, Any]:
    """The host-work figures a baseline keeps; an unsteady count is kept for its functions, not gated."""
    if work is None:
        return {}
    return {
        "host_lines_per_step": None if work.unsteady else work.lines,
        "host_calls_per_step": work.calls,
        "host_lines": {name: float(n) for name, n in work.lines_by_function.items()},
        "host_counter": work.tracer,
    }


def host_figure(metric: str, work: HostWork | None) -> tuple[float | None, str]:
    """A host-work budget's figure, or why there is none."""
    if work is None:
        return None, "host work was not counted (--gpuperf-host-work-calls 0)"
    return (work.lines if metric == "host_lines_per_step" else work.calls), ""


def compile_figure(log: CompileLog | None, metric: str) -> tuple[float | None, str]:
    """A torch.compile count for the test's calls, or why there is none. Recompiles are counted
    whatever ran before (none is an exact 0); breaks and skips only where the step compiled here."""
    if log is None:
        return None, "torch.compile's records were not read"
    if metric != "recompiles" and not log.compiles:
        return None, NOTHING_COMPILED
    return float(len(getattr(log, metric))), ""


def compile_events(log: CompileLog | None) -> dict[str, float]:
    """Each graph break, recompile and CUDA-graph skip by what it was and where, with its count."""
    events: dict[str, float] = {}
    for metric, kind in COMPILE_EVENT_KINDS.items():
        if compile_figure(log, metric)[0] is None or log is None:
            continue
        for text in getattr(log, metric):
            key = f"{kind}: {text or 'no reason given'}"
            events[key] = events.get(key, 0.0) + 1.0
    return events


def memory_figure(metric: str, rounds: RoundsInfo, calls: int) -> float | None:
    """A memory metric of the rounds: new allocations per call, or the rounds' own figure."""
    if metric == "new_allocs_per_step":
        return _per_call(rounds.new_allocations, calls)
    value = getattr(rounds, metric)
    return None if value is None else float(value)


def _trace_figure(device: DeviceMetrics | None, metric: str) -> float | None:
    """A figure of the profiled trace; None where the trace cannot give it (no operators in an
    Nsight export) or gives it unreliably (analysis.trust): then it is not compared."""
    if device is None or metric in device.unavailable:
        return None
    value = getattr(device, metric)
    return None if value is None else float(value)


def _per_launch(device: DeviceMetrics | None) -> float | None:
    """GPU work per launch, where both the busy time and the launches can be believed."""
    if device is None or "gpu_active_pct" in device.unavailable or "launches_per_step" in device.unavailable:
        return None
    return gpu_us_per_launch(device)


def throughput(items: float, p50_ms: Estimate) -> Estimate:
    """Items per second at the median latency; the interval follows from the latency's."""
    per_s = items * 1000.0
    return Estimate(per_s / p50_ms.value, per_s / p50_ms.high, per_s / p50_ms.low, p50_ms.exact_bounds)


class MeasurementError(GpuperfError, RuntimeError):
    """A backend reported what cannot be a time (NaN, infinite or negative)."""


def timed(backend: Backend, step: Callable[[], Any], calls: int) -> list[float]:
    """The backend's call times, refused when one is not a finite time of 0 or more."""
    times = backend.call_times_ms(step, calls)
    bad = [t for t in times if not (isinstance(t, (int, float)) and math.isfinite(t) and t >= 0)]
    if bad or len(times) != calls:
        raise MeasurementError(
            f"the {backend.name} backend returned {len(times)} call times for {calls} calls"
            + (f", among them {bad[0]!r}" if bad else "")
            + ": a time must be a finite number of ms, 0 or more"
        )
    return times


def warm_up(
    backend: Backend, step: Callable[[], Any], config: ProtocolConfig, consensus: Consensus = ALONE
) -> tuple[int, float]:
    """Calls made, and the wall time per call (ms, timing overhead included) of the last
    warmup chunk: the steady state, not the first calls' compilation or allocation."""
    min_s, calls, chunk = config.warmup_ms / 1000.0, 0, config.warmup_calls
    started, previous = time.perf_counter(), None
    while True:
        chunk_started = time.perf_counter()
        times = timed(backend, step, chunk)
        now = time.perf_counter()
        calls += chunk
        current = statistics.median(times)
        elapsed = now - started
        steady = previous is not None and abs(current - previous) <= STEADY_TOLERANCE * max(previous, 1e-9)
        done = (  # two chunks at least: rounds are sized from a chunk after the first calls
            previous is not None
            and calls >= config.warmup_calls
            and elapsed >= min_s
            and (steady or elapsed >= WARMUP_CAP_FACTOR * min_s)
        )
        per_call_s = max((now - chunk_started) / chunk, 1e-9)
        if not consensus.any(not done):  # every rank is done
            return calls, per_call_s * 1000.0
        previous = current
        # About a quarter of the minimum time per chunk: enough calls for a stable median.
        chunk = consensus.max(max(config.warmup_calls, min(100_000, math.ceil(min_s / 4 / per_call_s))))


def _latency_budgets(
    budget: dict[str, float], p50: Estimate, p99: Estimate, items: float | None, unjudged: str | None
) -> list[BudgetResult]:
    results = []
    for key, limit in budget.items():
        if KEYS[key].source != "latency":
            continue
        if key == "p50_ms":
            value = p50
        elif key == "p99_ms":
            value = p99
        elif items:
            value = throughput(items, p50)
        else:
            results.append(judge(key, limit, None, "the test passed no items= to gpu_profiler"))
            continue
        if unjudged is not None:
            unit = KEYS[key].unit
            results.append(judge(key, limit, None, f"{value.value:.4g} {unit} on the host clock; {unjudged}"))
        else:
            results.append(judge(key, limit, value))
    return results


NO_GENERATION = "the test measured no generation: gpu_profiler.generate(...) measures one"


def _generation_budgets(
    budget: dict[str, float], generation: Generation | None, unjudged: str | None
) -> tuple[GenerationStats | None, list[BudgetResult]]:
    """The generation so far and its budgets (more rounds while one is too close to call)."""
    keys = [key for key in budget if KEYS[key].source == "generation"]
    if generation is None:
        return None, [judge(key, budget[key], None, NO_GENERATION) for key in keys]
    stats = generation_stats(generation.recorder.calls(), generation.recorder.source, generation.slo)
    results = []
    for key in keys:
        value, reason = generation_figure(stats, key)
        if value is not None and unjudged is not None:
            shown = value.value if isinstance(value, Estimate) else value
            value, reason = None, f"{shown:.4g} {KEYS[key].unit} on the host clock; {unjudged}"
        results.append(judge(key, budget[key], value, reason))
    return stats, results


def generation_figure(stats: GenerationStats, key: str) -> tuple[Estimate | float | None, str]:
    """The figure a generation budget bounds, or why there is none."""
    if key == "ttft_ms":
        return stats.ttft_ms.at(0.5), ""
    if key == "tpot_ms":
        if stats.tpot_ms is None:
            return None, "no request had two output tokens"
        return stats.tpot_ms.at(0.5), ""
    if key == "itl_p99_ms":
        if stats.itl_ms is None:
            return None, f"{stats.source} gives no per-token times, only per-request ones"
        if not stats.itl_ms.supported(0.99):
            return None, (
                f"p99 of {stats.itl_ms.samples} token gaps: too few for its 95% interval "
                "(more tokens per call, or more rounds)"
            )
        return stats.itl_ms.at(0.99), ""
    if key == "tokens_per_s_min":
        return stats.tokens_per_s, "" if stats.tokens_per_s is not None else "the calls took no time"
    if stats.goodput_pct is None:
        return None, "no SLO to count against: give ttft_ms or tpot_ms budgets, or slo= to gpu_profiler.generate"
    return stats.goodput_pct, ""


def _unjudged_latency(backend: Backend, config: ProtocolConfig) -> str | None:
    """Why latency budgets are not judged: a gpu_budget states GPU latency, and with no GPU
    found (--gpuperf-device auto) a CPU's time says nothing about it."""
    if backend.name == HOST_CLOCK and not config.host_clock_judges_latency:
        return "the budget states GPU latency and no GPU was found (--gpuperf-device cpu judges it on the host clock)"
    return None


def measure(
    backend: Backend,
    step: Callable[[], Any],
    config: ProtocolConfig,
    *,
    test_id: str,
    budget: dict[str, float],
    items: float | None,
    trace_path: Path,
    baseline: Entry | None = None,
    tolerance_pct: float = 5.0,
    consensus: Consensus = ALONE,
    compiles: CompileWatch | None = None,
    generation: Generation | None = None,
) -> Measurement:
    """Measure ``step``; with a ``baseline``, compare with it (more rounds while the
    latency comparison is inconclusive, as for a budget too close to call). Under torchrun,
    ``consensus`` makes every rank call the step equally often. ``compiles``: a watch begun
    before the test's first call, read for what torch.compile did. ``generation``: the step is a
    generate call; its timed calls' tokens give TTFT, TPOT and the rest."""
    wall_started = time.perf_counter()
    warmup_calls, wall_ms_per_call = warm_up(backend, step, config, consensus)
    compiled_before_rounds = compiles.log() if compiles is not None else None
    # Rounds are sized in wall time: a 1 us step timed call by call costs more than 1 us a call.
    calls_per_round = consensus.max(max(MIN_CALLS_PER_ROUND, math.ceil(config.round_ms / max(wall_ms_per_call, 1e-6))))
    unjudged = _unjudged_latency(backend, config)
    backend.begin_rounds()
    if generation is not None:
        generation.recorder.collect()
    rounds: list[list[float]] = []
    clocks: list[float | None] = []
    while True:
        rounds.append(timed(backend, step, calls_per_round))
        clocks.append(backend.end_round())
        if len(rounds) < config.rounds:
            continue
        samples = [t for r in rounds for t in r]
        p50, p99 = quantile_interval(samples, 0.5), quantile_interval(samples, 0.99)
        latency = _latency_budgets(budget, p50, p99, items, unjudged)
        generated, latency_of_tokens = _generation_budgets(budget, generation, unjudged)
        undecided = any(r.status == UNDECIDED for r in [*latency, *latency_of_tokens])
        if baseline is not None and not undecided and not host_paced(baseline):  # else latency is not gated
            so_far = Rounds(tuple(statistics.median(r) for r in rounds), _known(clocks))
            undecided = latency_change(baseline.rounds, so_far, tolerance_pct).outcome == INCONCLUSIVE
        if len(rounds) >= config.max_rounds or not consensus.any(undecided):
            break
    if generation is not None:
        generation.recorder.stop()
    rounds_info = backend.end_rounds()
    compiled = compiles.log() if compiles is not None else None
    in_rounds = compiled.since(compiled_before_rounds).compiles if compiled and compiled_before_rounds else 0

    trace, why_not = None, None
    if config.profile_steps == 0:
        why_not = "profiling is off (--gpuperf-profile-steps 0)"
    elif (problem := backend.profile(step, config.profile_steps, trace_path)) is None:
        try:
            trace = analyze(load(trace_path), step_ms=p50.value)
        except TraceFormatError as exc:
            why_not = f"the profiled trace could not be read: {exc}"
    else:
        why_not = problem

    # Counted apart from the timed calls and the profiled pass: the trace function slows them.
    host_work = count_host_work(step, config.host_work_calls) if config.host_work_calls else None

    results = [settle(r) for r in [*latency, *latency_of_tokens]]
    results += _other_budgets(budget, trace, why_not, rounds_info, len(samples))
    results += [
        judge(key, limit, *host_figure(KEYS[key].name, host_work))
        for key, limit in budget.items()
        if KEYS[key].source == HOST
    ]
    results += _compile_budgets(budget, compiled)
    order = list(budget)
    results.sort(key=lambda r: order.index(r.key))
    measurement = Measurement(
        test_id=test_id,
        env=backend.env(),
        warmup_calls=warmup_calls,
        calls_per_round=calls_per_round,
        round_samples_ms=tuple(tuple(r) for r in rounds),
        p50=p50,
        p99=p99,
        mean_ms=statistics.fmean(samples),
        rounds_info=rounds_info,
        items=items,
        trace=trace,
        trace_path=str(trace_path) if trace is not None else None,
        trace_unavailable=why_not,
        budgets=tuple(results),
        wall_s=time.perf_counter() - wall_started,
        round_clock_mhz=_known(clocks),
        compiles=compiled,
        compiled_in_rounds=in_rounds,
        generation=generated,
        host_work=host_work,
    )
    if baseline is None:
        return measurement
    return replace(measurement, comparison=compare(baseline, measurement.entry, tolerance_pct))


def _known(clocks: list[float | None]) -> tuple[float, ...]:
    """The clock readings, if every round has one (a partial series cannot be paired with rounds)."""
    return tuple(c for c in clocks if c is not None) if all(c is not None for c in clocks) else ()


def _compile_budgets(budget: dict[str, float], compiled: CompileLog | None) -> list[BudgetResult]:
    results = []
    for key, limit in budget.items():
        if KEYS[key].source == "compile":
            value, reason = compile_figure(compiled, KEYS[key].name)
            results.append(judge(key, limit, value, reason))
    return results


def _other_budgets(
    budget: dict[str, float], trace: TraceMetrics | None, why_not: str | None, rounds: RoundsInfo, calls: int
) -> list[BudgetResult]:
    results = []
    device = trace.primary if trace is not None else None
    for key, limit in budget.items():
        spec = KEYS[key]
        if spec.source == "memory":
            value = memory_figure(spec.name, rounds, calls)
            reason = "" if value is not None else "the host clock measures no device memory"
            results.append(judge(key, limit, value, reason))
        elif spec.source == "trace":
            if device is None:
                reason = why_not or (trace.host_only_reason if trace is not None else None) or "no profiled trace"
                results.append(judge(key, limit, None, reason))
                continue
            value = getattr(device, spec.name)
            reason = device.unavailable.get(spec.name, "")
            results.append(judge(key, limit, None if reason else value, reason))
    return results


def _per_call(count: int | None, calls: int) -> float | None:
    return count / calls if count is not None and calls else None


def measure_test(
    backend: Backend,
    step: Callable[[], Any],
    config: ProtocolConfig,
    *,
    test_id: str,
    budget: dict[str, float],
    items: float | None,
    trace_paths: Callable[[], Path],
    baseline: Entry | None,
    tolerance_pct: float,
    recording: bool,
    consensus: Consensus = ALONE,
    watch_compiles: Callable[[], CompileWatch] | None = None,
    generation: Generation | None = None,
) -> Measurement:
    """A test's measurement: ``measure``, again where it reads as a regression (not while
    ``recording`` baselines), then, under torchrun, every rank's figures and the budgets they
    decide. ``trace_paths`` gives each profiled pass a new file. ``watch_compiles`` starts a
    watch of torch.compile before the first call; it spans both measurements (the second
    reuses what the first compiled, and must not lose its graph breaks)."""
    with contextlib.ExitStack() as stack:
        compiles = stack.enter_context(contextlib.closing(watch_compiles())) if watch_compiles else None

        def once() -> Measurement:
            return measure(
                backend,
                step,
                config,
                test_id=test_id,
                budget=budget,
                items=items,
                trace_path=trace_paths(),
                baseline=baseline,
                tolerance_pct=tolerance_pct,
                consensus=consensus,
                compiles=compiles,
                generation=generation,
            )

        result = once()
        first = result.comparison
        suspected = first is not None and first.status == REGRESSED and not recording
        if consensus.any(suspected):  # every rank measures again, or the step's collectives hang
            # A suspected regression is measured again before it fails the test.
            again = once()
            if suspected and first is not None and again.comparison is not None:
                worse = [c.brief() for c in first.changes if c.gated and c.outcome == REGRESSED]
                told = f"{', '.join(worse)}: regressed"
                again = replace(again, comparison=replace(again.comparison, first_attempt=told))
            result = again
        return with_ranks(result, budget, consensus)


def with_ranks(result: Measurement, budget: dict[str, float], consensus: Consensus) -> Measurement:
    """Every rank's figures for this test (under torchrun), the budgets they decide, and this
    rank's bottleneck classified knowing how long it waited for the others."""
    ranks = None
    trace = result.trace
    if consensus.world_size > 1:
        ranks = RanksReport.of(consensus.gather(_rank_payload(result, consensus.rank)))
        found = ranks.balance
        if found is not None and trace is not None:
            trace = reclassified(trace, found.wait(consensus.rank), step_ms=result.p50.value)
    budgets = list(result.budgets)
    for key, limit in budget.items():
        if KEYS[key].source != "ranks":
            continue
        if ranks is None:
            budgets.append(judge(key, limit, None, "one process: run under torchrun with 2 or more ranks"))
        elif (balanced := ranks.balance) is None:
            budgets.append(judge(key, limit, None, "no profiled pass with device work on every rank"))
        else:
            budgets.append(judge(key, limit, balanced.compute_imbalance_pct))
    return replace(result, ranks=ranks, budgets=tuple(budgets), trace=trace)


def _rank_payload(result: Measurement, rank: int) -> dict[str, Any]:
    """What this rank tells the others of its measurement (plain data: it travels as JSON)."""
    device = result.device
    payload: dict[str, Any] = {"rank": rank, "p50_ms": result.p50.value, "p99_ms": result.p99.value}
    if device is None:
        return {**payload, "nccl_pct": None, "nccl_us_per_step": None}
    return {
        **payload,
        "nccl_pct": device.nccl_pct,
        "nccl_us_per_step": device.nccl_us / device.steps if device.steps else None,
        "nccl_overlap_pct": device.nccl_overlap_pct,
        "steps": device.steps,
        "compute_us": device.compute_us,
        "nccl_us": device.nccl_us,
        "exposed_us": device.nccl_exposed_us,
        "collective_us": list(device.collective_us),
    }
