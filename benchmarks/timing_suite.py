"""The tests the timing-truth benchmark runs in one process (see benchmarks/timing_truth.py).

Every timing test measures one workload with one tool, right between two CUDA-event
reference measurements of the same step, and appends a JSON line to TIMING_TRUTH_OUT.
The reference: one event pair around each call, calls back to back, one synchronization
at the end, the median call. The tools, as users run them:

- gpuperf: the measurement protocol with its defaults (warmup, 10 rounds, profiled pass)
- do_bench: triton.testing.do_bench(step, return_mode="median"), its defaults otherwise
  (it clears the L2 cache before every call)
- timer: torch.utils.benchmark.Timer("step()").blocked_autorange(min_run_time=0.5).median
- benchmark_plain: pytest-benchmark's ``benchmark(step)``
- benchmark_synced: pytest-benchmark timing ``step(); torch.cuda.synchronize()``
- benchmark_first_use: ``benchmark(step)`` as the first thing a fresh process does with the
  step (the usual pytest run); its reference is taken after it, in the same process

Tests run repetition by repetition, with the tools in a rotated order each time, so the
card's warming (a GEMM's clock drops as it heats) does not always favour one tool.
The ``test_from_cold`` tests run first: a freshly built step timed in short chunks from its
first call, then 40 rounds of 50 ms, for the warmup and rounds defaults.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.workloads import WORKLOADS, build
from pytest_gpuperf.cuda.backend import CudaBackend
from pytest_gpuperf.measuring.protocol import measure
from pytest_gpuperf.settings import OPTIONS, Settings

OUT = Path(os.environ.get("TIMING_TRUTH_OUT", "timing-truth.jsonl"))
REPEATS = int(os.environ.get("TIMING_TRUTH_REPEATS", "3"))
REP = int(os.environ.get("TIMING_TRUTH_REP", "0"))  # which repetition a first-use process is
TOOLS = ("gpuperf", "do_bench", "timer", "benchmark_plain", "benchmark_synced")
DEFAULTS = Settings(**{o.name: o.default for o in OPTIONS})
REFERENCE_S = 0.3  # wall time of one reference measurement
CHUNK_MS = 10.0  # from cold: the span of one timed chunk
COLD_S = 2.0  # from cold: how long the chunks run
ROUND_MS, ROUNDS = 50.0, 40

_steps: dict[str, Callable[[], Any]] = {}


def step_for(workload: str) -> Callable[[], Any]:
    if workload not in _steps:
        _steps[workload] = build(workload)
    return _steps[workload]


def record(**fields: Any) -> None:
    with OUT.open("a") as out:
        out.write(json.dumps(fields) + "\n")


def event_times_ms(step: Callable[[], Any], calls: int) -> list[float]:
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(calls)]
    for start, end in pairs:
        start.record()
        step()
        end.record()
    pairs[-1][1].synchronize()
    return [start.elapsed_time(end) for start, end in pairs]


def reference_ms(step: Callable[[], Any]) -> float:
    warm = statistics.median(event_times_ms(step, 10))
    calls = max(30, min(5000, int(REFERENCE_S * 1000.0 / max(warm, 1e-3))))
    return statistics.median(event_times_ms(step, calls))


def gpuperf_ms(step: Callable[[], Any], tmp_path: Path) -> float:
    result = measure(
        CudaBackend(), step, DEFAULTS, test_id="t", budget={}, items=None, trace_path=tmp_path / "t.pt.trace.json.gz"
    )
    return result.p50.value


def do_bench_ms(step: Callable[[], Any]) -> float:
    from triton.testing import do_bench

    return float(do_bench(step, return_mode="median"))


def timer_ms(step: Callable[[], Any]) -> float:
    from torch.utils.benchmark import Timer

    return float(Timer("step()", globals={"step": step}).blocked_autorange(min_run_time=0.5).median) * 1000.0


def benchmark_ms(benchmark: Any, step: Callable[[], Any], synced: bool) -> float:
    def synchronized() -> None:
        step()
        torch.cuda.synchronize()

    benchmark(synchronized if synced else step)
    torch.cuda.synchronize()
    return float(benchmark.stats.stats.median) * 1000.0


@pytest.mark.parametrize("workload", WORKLOADS)
def test_from_cold(workload: str) -> None:
    time.sleep(3.0)  # let the card idle down between workloads
    step = build(workload)  # fresh tensors and, for the decoders, a fresh model
    backend = CudaBackend()
    started, chunks, calls = time.perf_counter(), [], 1
    while time.perf_counter() - started < COLD_S:
        times = backend.call_times_ms(step, calls)
        chunks.append([round(time.perf_counter() - started, 5), len(times), statistics.median(times)])
        calls = max(1, int(CHUNK_MS / max(statistics.median(times), 1e-3)))
    per_round = max(5, int(ROUND_MS / max(chunks[-1][2], 1e-3)))
    round_medians = [statistics.median(backend.call_times_ms(step, per_round)) for _ in range(ROUNDS)]
    record(kind="from_cold", workload=workload, chunks=chunks, calls_per_round=per_round, round_medians=round_medians)


@pytest.mark.parametrize("workload", WORKLOADS)
def test_profiled_pass_cost(workload: str, tmp_path: Path) -> None:
    """Wall time of one measurement with the default profiled pass and without one, alternately."""
    step = step_for(workload)
    measure(CudaBackend(), step, DEFAULTS, test_id="t", budget={}, items=None, trace_path=tmp_path / "warm.json.gz")
    walls: dict[str, list[float]] = {"profiled": [], "unprofiled": []}
    for index in range(4):
        profiled = index % 2 == 0
        settings = DEFAULTS if profiled else Settings(**{**DEFAULTS.__dict__, "gpuperf_profile_steps": 0})
        path = tmp_path / f"{index}.pt.trace.json.gz"
        result = measure(CudaBackend(), step, settings, test_id="t", budget={}, items=None, trace_path=path)
        walls["profiled" if profiled else "unprofiled"].append(result.wall_s)
    record(kind="profiled_pass_cost", workload=workload, **walls)


def _cases() -> list[Any]:
    cases = []
    for rep in range(REPEATS):
        for workload in WORKLOADS:
            shift = rep % len(TOOLS)
            for tool in TOOLS[shift:] + TOOLS[:shift]:
                cases.append(pytest.param(rep, workload, tool, id=f"{rep}-{workload}-{tool}"))
    return cases


@pytest.mark.parametrize("workload", WORKLOADS)
def test_first_use(workload: str, request: pytest.FixtureRequest) -> None:
    """Run alone in a fresh process (benchmarks/timing_truth.py does): the step's first timing."""
    step = build(workload)
    value = benchmark_ms(request.getfixturevalue("benchmark"), step, synced=False)
    after = reference_ms(step)
    record(
        kind="timing", rep=REP, workload=workload, tool="benchmark_first_use", ms=value, before_ms=None, after_ms=after
    )


@pytest.mark.parametrize(("rep", "workload", "tool"), _cases())
def test_timing(rep: int, workload: str, tool: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    step = step_for(workload)
    before = reference_ms(step)
    started = time.perf_counter()
    if tool == "gpuperf":
        value = gpuperf_ms(step, tmp_path)
    elif tool == "do_bench":
        value = do_bench_ms(step)
    elif tool == "timer":
        value = timer_ms(step)
    else:
        value = benchmark_ms(request.getfixturevalue("benchmark"), step, synced=tool == "benchmark_synced")
    wall = time.perf_counter() - started
    after = reference_ms(step)
    record(
        kind="timing", rep=rep, workload=workload, tool=tool, ms=value, before_ms=before, after_ms=after, wall_s=wall
    )
