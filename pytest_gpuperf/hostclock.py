"""Timing on the host clock, for machines without CUDA (CPU CI runs the whole path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from pytest_gpuperf.model import EnvInfo, RoundsInfo

NO_GPU = "host clock: there is no GPU to profile"


class HostClockBackend:
    name = "host-clock"

    def env(self) -> EnvInfo:
        try:
            torch_version: str | None = metadata.version("torch")
        except metadata.PackageNotFoundError:
            torch_version = None
        return EnvInfo(self.name, "cpu", torch=torch_version)

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
