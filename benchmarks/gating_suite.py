"""The tests the gating benchmark runs in each fresh process (see benchmarks/gating.py).

Each workload is measured three ways: by gpuperf (gpu_profiler, compared with its
baseline), by pytest-benchmark as most users run it (host clock around queued GPU
work), and by pytest-benchmark with a synchronize inside the timed function.
GATING_DELAY_PCT adds a GPU delay of that share of the baseline's median step
(GATING_REFERENCE_MS, recorded by the baseline process).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest
import torch

from benchmarks.workloads import WORKLOADS, build, delayed

DELAY_PCT = float(os.environ.get("GATING_DELAY_PCT", "0"))
REFERENCE_MS: dict[str, float] = json.loads(os.environ.get("GATING_REFERENCE_MS", "{}"))
# The tolerance each workload's test states: about ten times its A/A round noise, at least 1%.
TOLERANCE_PCT = {"gemm": 2.0, "copy": 1.0, "graph_decode": 1.0, "eager_decode": 5.0}

_steps: dict[str, Callable[[], Any]] = {}


def step_for(workload: str) -> Callable[[], Any]:
    if workload not in _steps:
        _steps[workload] = delayed(build(workload), DELAY_PCT / 100.0 * REFERENCE_MS.get(workload, 0.0))
    return _steps[workload]


PARAMS = [pytest.param(w, marks=pytest.mark.gpu_baseline(tolerance_pct=TOLERANCE_PCT[w]), id=w) for w in WORKLOADS]


@pytest.mark.parametrize("workload", PARAMS)
def test_gpuperf(gpu_profiler: Any, workload: str) -> None:
    gpu_profiler(step_for(workload))


@pytest.mark.parametrize("workload", WORKLOADS)
def test_benchmark_plain(benchmark: Any, workload: str) -> None:
    benchmark(step_for(workload))
    torch.cuda.synchronize()


@pytest.mark.parametrize("workload", WORKLOADS)
def test_benchmark_synced(benchmark: Any, workload: str) -> None:
    step = step_for(workload)

    def synced() -> None:
        step()
        torch.cuda.synchronize()

    benchmark(synced)
