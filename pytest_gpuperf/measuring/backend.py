"""What a backend is (how calls are timed, and what else is read around them) and what it
reports: where it measured (EnvInfo) and what it saw around the timed rounds (RoundsInfo);
and what torch.compile did during a test's calls (CompileWatch, CompileLog).
The CUDA backend and the compile watch live in ``pytest_gpuperf.cuda``; the host clock in ``hostclock``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pytest_gpuperf.measuring.generation import TokenClock


@dataclass(frozen=True)
class EnvInfo:
    """Where and how a measurement was taken."""

    backend: str  # "cuda-events", "host-clock", or a custom backend's name
    device: str  # GPU name, or "cpu"
    driver: str | None = None
    cuda: str | None = None
    torch: str | None = None


@dataclass(frozen=True)
class RoundsInfo:
    """What the backend saw around the timed rounds."""

    peak_mem_mb: float | None = None  # the process's peak allocated during the rounds
    step_mem_mb: float | None = None  # that peak less what was allocated when the rounds began: the step's own
    new_allocations: int | None = None  # device allocations (cudaMalloc segments) after warmup
    sm_clock_mhz: float | None = None  # median SM clock sampled during the rounds
    sm_clock_max_mhz: float | None = None

    @property
    def throttled(self) -> bool:
        """The SM clock ran far below its maximum: the timing is not the card's steady state."""
        if self.sm_clock_mhz is None or not self.sm_clock_max_mhz:
            return False
        return self.sm_clock_mhz < THROTTLED_CLOCK_FRACTION * self.sm_clock_max_mhz


THROTTLED_CLOCK_FRACTION = 0.85


class Backend(Protocol):
    """How calls are timed and what else is read around them."""

    name: str

    def env(self) -> EnvInfo: ...

    def call_times_ms(self, step: Callable[[], Any], calls: int) -> list[float]:
        """Run ``step`` ``calls`` times; the time of each call in ms, synchronized once at the end."""
        ...

    def begin_rounds(self) -> None: ...

    def end_round(self) -> float | None:
        """Called after each round; the SM clock (MHz) now, or None where it cannot be read."""
        ...

    def end_rounds(self) -> RoundsInfo: ...

    def profile(self, step: Callable[[], Any], steps: int, path: Path) -> str | None:
        """Write a Chrome trace of ``steps`` calls to ``path``; None, or why there is none."""
        ...

    def token_clock(self) -> TokenClock:
        """The clock a generation's tokens are marked on (CUDA events on the GPU)."""
        ...

    def profile_memory(self, step: Callable[[], Any], trace: Path, timeline: Path) -> MemoryFiles:
        """After one untraced call, trace one call with its allocations and Python stacks (gzipped
        Chrome trace at ``trace``) and write the profiler's memory timeline to ``timeline`` plus
        the suffix of its format."""
        ...


@dataclass(frozen=True)
class MemoryFiles:
    """What a memory-profiled call wrote."""

    trace: Path | None = None  # Chrome trace with [memory] events, frames and modules
    timeline: Path | None = None  # torch.profiler's memory timeline: HTML where matplotlib is installed, else JSON
    reason: str | None = None  # why either is missing


@dataclass(frozen=True)
class CompileLog:
    """What torch.compile did since a watch began: each entry names where and why."""

    compiles: int = 0  # frames dynamo converted (compiled, recompiled, or looked at and left to Python)
    graph_breaks: tuple[str, ...] = ()  # "file:line: reason", one per break
    recompiles: tuple[str, ...] = ()  # "function (file:line): the guard that failed"
    cudagraph_skips: tuple[str, ...] = ()  # why a compiled graph was not captured ("" where torch said not)

    def since(self, earlier: CompileLog) -> CompileLog:
        """What happened after ``earlier``, a reading of the same watch."""
        return CompileLog(
            self.compiles - earlier.compiles,
            self.graph_breaks[len(earlier.graph_breaks) :],
            self.recompiles[len(earlier.recompiles) :],
            self.cudagraph_skips[len(earlier.cudagraph_skips) :],
        )


class CompileWatch(Protocol):
    """Reads torch.compile's own counters from the moment it was made."""

    def log(self) -> CompileLog:
        """Everything compiled since the watch began."""
        ...

    def close(self) -> None: ...
