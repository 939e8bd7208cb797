"""A replay backend: fixed call times and a recorded trace, so the plugin's
behaviour is tested without a GPU (installed through pytest_gpuperf_make_backend)."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pytest_gpuperf.measuring.backend import EnvInfo, MemoryFiles, RoundsInfo


class ReplayBackend:
    name = "replay"

    def __init__(
        self,
        samples_ms: Iterable[float],
        trace: Path | None = None,
        peak_mem_mb: float = 512.0,
        clock_mhz: float = 1980.0,
        torch: str = "2.11.0+cu130",
        memory_trace: Path | None = None,
        tokens: tuple[float, float, int] = (10.0, 2.0, 8),
    ) -> None:
        self._memory_trace = memory_trace
        self._tokens = tokens
        self._samples = itertools.cycle(list(samples_ms))
        self._trace = trace
        self._peak = peak_mem_mb
        self._clock = clock_mhz
        self._torch = torch
        self.calls = 0

    def env(self) -> EnvInfo:
        return EnvInfo(self.name, "NVIDIA H100 80GB HBM3", driver="580.159.04", cuda="13.0", torch=self._torch)

    def call_times_ms(self, step: Callable[[], Any], calls: int) -> list[float]:
        times = []
        for _ in range(calls):
            step()
            self.calls += 1
            times.append(next(self._samples))
        return times

    def begin_rounds(self) -> None:
        pass

    def end_round(self) -> float | None:
        return self._clock

    def end_rounds(self) -> RoundsInfo:
        return RoundsInfo(peak_mem_mb=self._peak, new_allocations=0, sm_clock_mhz=self._clock, sm_clock_max_mhz=1980.0)

    def profile(self, step: Callable[[], Any], steps: int, path: Path) -> str | None:
        for _ in range(steps + 1):
            step()
        if self._trace is None:
            return "replay: no trace"
        shutil.copyfile(self._trace, path)
        return None

    def token_clock(self) -> ReplayTokenClock:
        return ReplayTokenClock(*self._tokens)

    def profile_memory(self, step: Callable[[], Any], trace: Path, timeline: Path) -> MemoryFiles:
        """The recorded memory trace, where one was given; its timeline is a copy of it as JSON."""
        step()
        step()
        if self._memory_trace is None:
            return MemoryFiles(reason="replay: no memory trace")
        shutil.copyfile(self._memory_trace, trace)
        written = timeline.with_name(timeline.name + ".json")
        written.write_text("[]")
        return MemoryFiles(trace, written)


class ReplayTokenClock:
    """A clock on which each generate call's first token comes ``ttft_ms`` after its start and
    each later one ``tpot_ms`` after the one before, for calls of ``tokens`` tokens: marks are
    read in order, a call's start and then its tokens."""

    name = "replay"

    def __init__(self, ttft_ms: float, tpot_ms: float, tokens: int) -> None:
        self._ttft, self._tpot, self._tokens = ttft_ms, tpot_ms, tokens
        self._marks = 0

    def mark(self) -> float:
        position = self._marks % (self._tokens + 1)
        call = self._marks // (self._tokens + 1)
        self._marks += 1
        start = call * 1e6  # calls far apart: each call's times are its own
        return start if position == 0 else start + self._ttft + (position - 1) * self._tpot

    def elapsed_ms(self, start: float, end: float) -> float:
        return end - start
