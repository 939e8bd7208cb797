"""What is measured again to explain a failing test: where its memory peak came from (a
memory-profiled call and torch.profiler's memory timeline), and, opt-in, its kernels'
throughput under Nsight Compute."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_gpuperf.analysis.memory import MemoryPeak, read_memory_peak
from pytest_gpuperf.analysis.trace import TraceFormatError
from pytest_gpuperf.measuring.backend import Backend
from pytest_gpuperf.measuring.ncu import NcuReport


@dataclass(frozen=True)
class MemoryExplanation:
    peak: MemoryPeak | None = None
    trace: Path | None = None  # the memory-profiled call's trace
    timeline: Path | None = None  # torch.profiler's memory timeline
    reason: str | None = None  # why the peak could not be named


@dataclass(frozen=True)
class Explanation:
    memory: MemoryExplanation | None = None  # for a failing test with a memory budget
    ncu: NcuReport | None = None  # under --gpuperf-ncu


def explain_memory(backend: Backend, step: Callable[[], Any], trace: Path, timeline: Path) -> MemoryExplanation:
    files = backend.profile_memory(step, trace, timeline)
    if files.trace is None:
        return MemoryExplanation(reason=files.reason or "no memory-profiled trace")
    try:
        peak = read_memory_peak(files.trace)
    except TraceFormatError as exc:
        return MemoryExplanation(None, files.trace, files.timeline, str(exc))
    reason = files.reason if peak is not None else "the profiled call allocated no CUDA memory"
    return MemoryExplanation(peak, files.trace, files.timeline, reason)
