"""Timing on the host clock, for machines without CUDA (CPU CI runs the whole path).

The device it names is the CPU model and torch's thread count: a step timed with one
thread is not comparable with one timed with eight, so CPU baselines are kept apart
by both (``baselines/<cpu model>-<n>-threads/``).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from pytest_gpuperf.measuring.backend import EnvInfo, MemoryFiles, RoundsInfo

NO_GPU = "host clock: there is no GPU to profile"
HOST_CLOCK = "host-clock"


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform says, else "cpu"."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


class HostClockBackend:
    name = HOST_CLOCK

    def __init__(self, threads: int | None = None) -> None:
        """``threads``: torch's intra-op threads; None where unknown. The environment is read
        once here: env() is asked for every measurement."""
        try:
            torch_version: str | None = metadata.version("torch")
        except metadata.PackageNotFoundError:
            torch_version = None
        named = f", {threads} torch thread{'s' if threads != 1 else ''}" if threads else ""
        self._env = EnvInfo(self.name, f"cpu: {cpu_model()}{named}", torch=torch_version)

    def env(self) -> EnvInfo:
        return self._env

    def call_times_ms(self, step: Callable[[], Any], calls: int) -> list[float]:
        times = []
        clock = time.perf_counter
        for _ in range(calls):
            start = clock()
            step()
            times.append((clock() - start) * 1000.0)
        return times

    def begin_rounds(self) -> None:
        pass

    def end_round(self) -> float | None:
        return None

    def end_rounds(self) -> RoundsInfo:
        return RoundsInfo()

    def profile(self, step: Callable[[], Any], steps: int, path: Path) -> str | None:
        return NO_GPU

    def token_clock(self) -> HostTokenClock:
        return HostTokenClock()

    def profile_memory(self, step: Callable[[], Any], trace: Path, timeline: Path) -> MemoryFiles:
        return MemoryFiles(reason=NO_GPU)


class HostTokenClock:
    """Token instants on the host's clock: where the host waits for each token, as without a GPU."""

    name = HOST_CLOCK

    def mark(self) -> float:
        return time.perf_counter()

    def elapsed_ms(self, start: float, end: float) -> float:
        return (end - start) * 1000.0
