"""The normalized trace every loader produces (``chrome.py``, ``nsys.py``; ``load.py`` picks one).

A loader's job is only to turn a file into a :class:`Trace`: device operations,
host intervals, launch calls keyed by correlation id, allocation calls and
FLOP-carrying operators. The metric definitions live in ``metrics.py`` and never
look at raw events, so a Kineto trace and an Nsight Systems export are measured
by the same code.

Times are float microseconds relative to the trace's first complete event:
rebasing before the conversion to float keeps nanosecond precision even for
integer timestamps far beyond 2**53.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from pytest_gpuperf.analysis.intervals import Interval
from pytest_gpuperf.errors import GpuperfError

KERNEL, MEMCPY, MEMSET = "kernel", "memcpy", "memset"


class TraceFormatError(GpuperfError, ValueError):
    """A trace file that cannot be read; the message names the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class DeviceOp(NamedTuple):
    start: float
    end: float
    kind: str  # KERNEL, MEMCPY or MEMSET
    name: str
    device: int
    stream: int
    correlation: int | None


class ApiCall(NamedTuple):
    """A CUDA runtime or driver call (a launch, a copy, a malloc, a sync)."""

    name: str
    start: float
    end: float


class FlopOp(NamedTuple):
    """A host operator with a FLOP count and the bytes its tensors occupy."""

    name: str
    flops: float
    bytes: float
    element_size: int


class Trace:
    """A trace in the form the analysis reads, filled by one of the readers. (A plain class:
    ``gpuperf analyze`` runs a process per trace, which need not import ``dataclasses``.)"""

    def __init__(self, source: str) -> None:
        self.source = source
        self.device_ops: list[DeviceOp] = []
        self.host: list[Interval] = []  # cpu ops, runtime and driver calls
        self.syncs: list[Interval] = []  # the synchronize calls among them
        self.ops: list[Interval] = []  # operators (cpu_op), where they ran on the host
        self.op_names: list[str] = []  # each operator's name, in the order of ``ops``
        self.api_calls: dict[int, ApiCall] = {}  # by correlation id
        self.allocations: list[ApiCall] = []  # cudaMalloc and kin
        self.frees: list[ApiCall] = []  # cudaFree and kin (synchronous: they stall too)
        self.flop_ops: list[FlopOp] = []
        self.steps = 1
        self.step_spans: list[Interval] = []  # the profiled steps' annotations on the host
        self.device_names: dict[int, str] = {}
        self.rank: int | None = None

    def __eq__(self, other: object) -> bool:
        """Every field equal: what the readers must agree on for the same file."""
        return type(other) is Trace and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"Trace({self.source!r}: {len(self.device_ops)} device operations, {len(self.host)} host intervals)"

    def add_api_call(self, name: str, start: float, end: float, correlation: int | None) -> None:
        """A CUDA runtime or driver call: host work, joined to device work by its
        correlation id, and sorted out if it waits (a sync) or allocates."""
        call = ApiCall(name, start, end)
        self.host.append((start, end))
        if correlation is not None:
            self.api_calls[correlation] = call
        kind = api_call_kind(name)
        if kind == SYNC_CALL:
            self.syncs.append((start, end))
        elif kind == ALLOCATION_CALL:
            self.allocations.append(call)
        elif kind == FREE_CALL:
            self.frees.append(call)


OTHER_CALL, SYNC_CALL, ALLOCATION_CALL, FREE_CALL = range(4)


def api_call_kind(name: str) -> int:
    """What a CUDA call is to the analysis, by its name (the native scanner asks once per name)."""
    if is_sync_call(name):
        return SYNC_CALL
    if is_allocation_call(name):
        return ALLOCATION_CALL
    if is_free_call(name):
        return FREE_CALL
    return OTHER_CALL


def is_sync_call(name: str) -> bool:
    return "Synchronize" in name


def is_allocation_call(name: str) -> bool:
    return name.startswith(("cudaMalloc", "cuMemAlloc")) or name == "cuMemCreate"


def is_free_call(name: str) -> bool:
    return name.startswith(("cudaFree", "cuMemFree")) or name == "cuMemRelease"


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a trace is a million small objects and
    no cycles, so collections while building or measuring it only cost time."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
