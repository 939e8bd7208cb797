"""Timing with CUDA events, memory from the caching allocator, clocks from NVML,
and the profiled pass with torch.profiler."""

from __future__ import annotations

import gzip
import shutil
import statistics
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from pytest_gpuperf.cuda.nvml import SmClock
from pytest_gpuperf.measuring.backend import EnvInfo, MemoryFiles, RoundsInfo

L2_FLUSH_BYTES = 256 * 2**20  # larger than any current GPU's L2 cache


class CudaBackend:
    name = "cuda-events"

    def __init__(self, *, flush_l2: bool = False) -> None:
        self.device = torch.cuda.current_device()
        # Written before each timed call, outside its event pair, to evict the L2 cache.
        self._flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.uint8, device="cuda") if flush_l2 else None
        self._clock = SmClock.open(self.device)
        self._clock_samples: list[float] = []
        self._segments_before = 0
        self._allocated_before = 0

    def env(self) -> EnvInfo:
        return EnvInfo(
            self.name,
            torch.cuda.get_device_name(self.device),
            driver=self._clock.driver if self._clock else None,
            cuda=torch.version.cuda,
            torch=torch.__version__,
        )

    def call_times_ms(self, step: Callable[[], Any], calls: int) -> list[float]:
        # One event pair per call on the current stream; one synchronization per batch.
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(calls)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(calls)]
        for start, end in zip(starts, ends, strict=True):
            if self._flush is not None:
                self._flush.zero_()
            start.record()
            step()
            end.record()
        ends[-1].synchronize()
        return [start.elapsed_time(end) for start, end in zip(starts, ends, strict=True)]

    def begin_rounds(self) -> None:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        self._allocated_before = torch.cuda.memory_allocated()
        self._segments_before = _segments_allocated()
        self._clock_samples = []

    def end_round(self) -> float | None:
        if self._clock is None:
            return None
        mhz = self._clock.current_mhz()
        self._clock_samples.append(mhz)
        return mhz

    def end_rounds(self) -> RoundsInfo:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return RoundsInfo(
            peak_mem_mb=peak / 2**20,
            step_mem_mb=max(0, peak - self._allocated_before) / 2**20,
            new_allocations=_segments_allocated() - self._segments_before,
            sm_clock_mhz=statistics.median(self._clock_samples) if self._clock_samples else None,
            sm_clock_max_mhz=self._clock.max_mhz() if self._clock else None,
        )

    def profile(self, step: Callable[[], Any], steps: int, path: Path) -> str | None:
        raw = path.with_suffix("")  # the profiler writes plain JSON; kept gzipped
        torch.cuda.synchronize()
        with warnings.catch_warnings():
            # One cycle only (warmup, then the active steps): torch's note that events of earlier
            # cycles are cleared says nothing here, yet showed in every measured test's output.
            warnings.filterwarnings("ignore", message=".*Profiler clears events at the end of each cycle")
            self._profile(step, steps, raw)
        torch.cuda.synchronize()
        if not raw.exists():
            return "the profiler wrote no trace"
        _gzip(raw, path)
        return None

    def _profile(self, step: Callable[[], Any], steps: int, raw: Path) -> None:
        with profile(
            activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
            schedule=schedule(wait=0, warmup=1, active=steps),
            on_trace_ready=lambda prof: prof.export_chrome_trace(str(raw)),
            record_shapes=True,
            profile_memory=True,
            with_flops=True,
        ) as prof:
            for index in range(1 + steps):
                step()
                if index in (0, steps):
                    # Drain the warmup step (the window then holds its own steps' work only) and the
                    # last (work still running when the window closes would be missing from it).
                    torch.cuda.synchronize()
                prof.step()

    def token_clock(self) -> CudaTokenClock:
        return CudaTokenClock()

    def profile_memory(self, step: Callable[[], Any], trace: Path, timeline: Path) -> MemoryFiles:
        step()  # untraced: the traced call then makes only its own allocations, not first-call caches
        torch.cuda.synchronize()
        with profile(
            activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
            record_shapes=True,
            profile_memory=True,
            with_stack=True,  # the timeline and the naming of blocks need the Python frames
        ) as prof:
            step()
            torch.cuda.synchronize()
        raw = trace.with_suffix("")
        prof.export_chrome_trace(str(raw))
        _gzip(raw, trace)
        written = timeline.with_name(timeline.name + (".html" if _has_matplotlib() else ".json"))
        with warnings.catch_warnings():
            # torch 2.11 deprecates the timeline for its memory snapshots; it still writes it.
            warnings.filterwarnings("ignore", message=".*export_memory_timeline.*deprecated", category=FutureWarning)
            try:
                prof.export_memory_timeline(str(written), device=f"cuda:{self.device}")
            except Exception as exc:  # a torch without the exporter, or one that fails on this trace
                return MemoryFiles(trace, None, f"torch.profiler could not write the memory timeline: {exc!r}")
        return MemoryFiles(trace, written)


class CudaTokenClock:
    """Token instants as CUDA events on the current stream: each completes when the GPU has done
    the work launched before it (for HF generate, whose streamer gets tokens already copied to
    the host, that is when the host had the token)."""

    name = "cuda-events"

    def mark(self) -> torch.cuda.Event:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def elapsed_ms(self, start: torch.cuda.Event, end: torch.cuda.Event) -> float:
        return float(start.elapsed_time(end))


def capture_for_ncu(step: Callable[[], Any], warmup_calls: int) -> None:
    """Warm the step up, then run it once inside cudaProfilerStart/Stop: the one call that
    ``ncu --profile-from-start off`` profiles."""
    for _ in range(warmup_calls):
        step()
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    try:
        step()
        torch.cuda.synchronize()
    finally:
        torch.cuda.profiler.stop()


def _gzip(raw: Path, path: Path) -> None:
    with raw.open("rb") as src, gzip.GzipFile(path, "wb", mtime=0) as dst:
        shutil.copyfileobj(src, dst)
    raw.unlink()


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _segments_allocated() -> int:
    """Device allocations (cudaMalloc of new segments) the caching allocator has made so far."""
    return int(torch.cuda.memory_stats().get("segment.all.allocated", 0))


def synchronized_timer() -> float:
    """A host clock that first waits for the GPU: for timers that assume synchronous work."""
    import time

    torch.cuda.synchronize()
    return time.perf_counter()
