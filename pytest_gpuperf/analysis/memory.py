"""The peak of device memory in a memory-profiled trace, and what held it.

torch.profiler with ``profile_memory=True`` records each caching-allocator allocation and
free as a ``[memory]`` instant event (bytes, address, total allocated after it); with
``with_stack=True`` the Python frames and ``nn.Module`` calls are spans on the same thread.
An allocation is named by the operators, module and user frame whose spans enclose it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from pytest_gpuperf.analysis.kineto import gunzip
from pytest_gpuperf.analysis.trace import TraceFormatError

CUDA_DEVICE_TYPE = 1  # "Device Type" of a [memory] event: 0 CPU, 1 CUDA

# Frames of the framework and of the test runner: the user's own frame is the innermost other one.
_FRAMEWORK = re.compile(r"(^|/)(torch|_pytest|pluggy|pytest_gpuperf|triton)/")
_FRAME = re.compile(r"^(?P<path>[^<][^(]*)\((?P<line>\d+)\): (?P<function>.+)$")
_MODULE_PREFIX = "nn.Module: "


@dataclass(frozen=True)
class Allocation:
    """One block allocated during the profiled step and still held at its peak."""

    bytes: int
    operators: tuple[str, ...]  # enclosing operators, outermost first
    module: str  # the innermost nn.Module it was made in ("" where none was recorded)
    frame: str  # the innermost user Python frame, "file.py(12): function" ("" where none)

    def describe(self) -> str:
        where = ["outside any operator"]
        if self.operators:
            inner, outer = self.operators[-1], self.operators[0]
            where = [inner if inner == outer else f"{inner} in {outer}"]
        if self.module:
            where.append(self.module)
        if self.frame:
            where.append(f"at {self.frame}")
        return f"{mib(self.bytes)} by {', '.join(where)}"


@dataclass(frozen=True)
class MemoryPeak:
    """The device's allocated memory at its highest in the trace, and the blocks that made it up."""

    device: int
    peak_bytes: int  # allocated at the peak (the allocator's total)
    held: tuple[Allocation, ...]  # made in the trace and not yet freed at the peak, largest first
    allocations: int  # allocations the trace recorded on this device

    @property
    def before_bytes(self) -> int:
        """Held at the peak but allocated before the trace began: weights, caches, inputs."""
        return max(0, self.peak_bytes - sum(a.bytes for a in self.held))

    def lines(self, shown: int = 5) -> list[str]:
        made = self.peak_bytes - self.before_bytes
        lines = [
            f"memory at the peak on cuda:{self.device}: {mib(self.peak_bytes)} allocated, "
            f"{mib(self.before_bytes)} of it held from before the step, {mib(made)} made in the step"
        ]
        lines += [f"  {a.describe()}" for a in self.held[:shown]]
        rest = self.held[shown:]
        if rest:
            lines.append(f"  and {len(rest)} smaller blocks, {mib(sum(a.bytes for a in rest))}")
        return lines


def mib(n: int) -> str:
    """Bytes in the unit that reads best: GiB, MiB, or KiB for the small blocks of reductions and scalars."""
    if abs(n) >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    if abs(n) >= 2**20:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 2**10:.1f} KiB"


# --- reading ------------------------------------------------------------------------------------------------


_Scalar = str | int | float | bool | None


class _Args(msgspec.Struct, gc=False):
    bytes: Any = msgspec.field(default=None, name="Bytes")
    total: Any = msgspec.field(default=None, name="Total Allocated")
    address: Any = msgspec.field(default=None, name="Addr")
    device_type: Any = msgspec.field(default=None, name="Device Type")
    device: Any = msgspec.field(default=None, name="Device Id")


class _Event(msgspec.Struct, gc=False):
    ph: Any = None
    cat: Any = None
    name: Any = None
    ts: Any = None
    dur: Any = None
    tid: Any = None
    args: _Args | list[Any] | _Scalar = None


_Events = list[_Event | list[Any] | _Scalar]


class _Trace(msgspec.Struct, gc=False):
    traceEvents: _Events | dict[str, Any] | _Scalar = None


@dataclass(frozen=True)
class _Change:
    ts: float
    tid: Any
    bytes: int
    total: int
    address: int
    device: int


@dataclass(frozen=True)
class _Span:
    start: float
    end: float
    kind: str  # "operator", "module" or "frame"
    name: str


def read_memory_peak(path: Path, device: int | None = None) -> MemoryPeak | None:
    """The peak of a memory-profiled trace file (``.json`` or ``.json.gz``); None where it
    recorded no CUDA allocation. Raises TraceFormatError on a file that is not such a trace."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gunzip(raw, str(path))
    try:
        document = msgspec.json.decode(raw, type=_Trace | _Events | _Scalar)
    except msgspec.MsgspecError as exc:
        raise TraceFormatError(str(path), f"not a Chrome trace ({exc})") from None
    events = document.traceEvents if isinstance(document, _Trace) else document
    if not isinstance(events, list):
        raise TraceFormatError(str(path), "no traceEvents array")
    return memory_peak([e for e in events if isinstance(e, _Event)], device)


def memory_peak(events: list[_Event], device: int | None = None) -> MemoryPeak | None:
    changes = _changes(events, device)
    if not changes:
        return None
    peak_index = max(range(len(changes)), key=lambda i: changes[i].total)  # the first, on ties
    live: dict[int, _Change] = {}
    for change in changes[: peak_index + 1]:
        if change.bytes > 0:
            live[change.address] = change
        else:
            live.pop(change.address, None)
    named = _name(list(live.values()), _spans(events))
    held = tuple(sorted(named, key=lambda a: -a.bytes))
    peak = changes[peak_index]
    return MemoryPeak(peak.device, peak.total, held, sum(1 for c in changes if c.bytes > 0))


def _changes(events: list[_Event], device: int | None) -> list[_Change]:
    """The CUDA allocations and frees of one device (the first seen, unless named), in time order."""
    found: list[_Change] = []
    for e in events:
        a = e.args
        if e.name != "[memory]" or not isinstance(a, _Args) or a.device_type != CUDA_DEVICE_TYPE:
            continue
        numbers = (e.ts, a.bytes, a.total, a.address, a.device)
        if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
            continue
        if device is None:
            device = int(a.device)
        if int(a.device) == device and a.bytes != 0:
            found.append(_Change(float(e.ts), e.tid, int(a.bytes), int(a.total), int(a.address), device))
    found.sort(key=lambda c: c.ts)
    return found


def _spans(events: list[_Event]) -> dict[Any, list[_Span]]:
    """Operator, nn.Module and user-frame spans per thread, by start (outer before inner)."""
    spans: dict[Any, list[_Span]] = {}
    for e in events:
        if e.ph != "X" or not isinstance(e.name, str) or not isinstance(e.ts, int | float):
            continue
        if not isinstance(e.dur, int | float):
            continue
        kind = _kind(e.cat, e.name)
        if kind is not None:
            name = e.name.removeprefix(_MODULE_PREFIX)
            spans.setdefault(e.tid, []).append(_Span(float(e.ts), float(e.ts) + float(e.dur), kind, name))
    for line in spans.values():
        line.sort(key=lambda s: (s.start, -s.end))
    return spans


def _kind(category: Any, name: str) -> str | None:
    if category in ("cpu_op", "operator"):
        return "operator"
    if category != "python_function":
        return None
    if name.startswith(_MODULE_PREFIX):
        return "module"
    match = _FRAME.match(name)
    if match is None or _FRAMEWORK.search(match["path"]):
        return None
    return "frame"


def _name(blocks: list[_Change], spans: dict[Any, list[_Span]]) -> list[Allocation]:
    """Each block with the spans enclosing it on its thread: one sweep per thread in time order."""
    named: list[Allocation] = []
    by_thread: dict[Any, list[_Change]] = {}
    for block in blocks:
        by_thread.setdefault(block.tid, []).append(block)
    for tid, made in by_thread.items():
        line = spans.get(tid, [])
        open_spans: list[_Span] = []
        next_span = 0
        for block in sorted(made, key=lambda b: b.ts):
            while next_span < len(line) and line[next_span].start <= block.ts:
                _close_before(open_spans, line[next_span].start)
                open_spans.append(line[next_span])
                next_span += 1
            _close_before(open_spans, block.ts)
            named.append(_allocation(block, [s for s in open_spans if s.end >= block.ts]))
    return named


def _close_before(open_spans: list[_Span], ts: float) -> None:
    while open_spans and open_spans[-1].end < ts:
        open_spans.pop()


def _allocation(block: _Change, enclosing: list[_Span]) -> Allocation:
    operators = tuple(s.name for s in enclosing if s.kind == "operator")
    modules = [s.name for s in enclosing if s.kind == "module"]
    frames = [s.name for s in enclosing if s.kind == "frame"]
    return Allocation(block.bytes, operators, modules[-1] if modules else "", frames[-1] if frames else "")
