"""Host work per step: the Python lines and function calls one call of the step runs, counted.

A count does not move with the host's speed: unchanged code runs the same lines in every
process, where its time moves 30-60% (a host-paced HF forward's latency, fresh processes on
an H100). So a step the host paces, whose latency is reported rather than gated, is still
gated on what its host does. The calls counted are made apart from the timed ones (a trace
function slows them), on the calling thread only; work on other threads is not counted.

One mechanism on every Python version: ``sys.settrace`` ('call' and 'line' events), which
counts the same lines under 3.10 to 3.13. A tracer already set (a debugger, coverage) is put
back after each counted call; it misses the lines of those calls.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, NamedTuple

from pytest_gpuperf.judging.registry import FUNCTIONS_KEPT

# Each counted call's totals must agree this closely for the count to be gated: a step whose
# Python work differs between calls (sampling, a cache that fills) is reported, not gated.
STEADY_SPREAD = 0.005


class HostWork(NamedTuple):
    lines_per_call: tuple[int, ...]  # Python lines each counted call ran
    calls_per_call: tuple[int, ...]  # Python function calls (frames entered) each counted call made
    lines_by_function: dict[str, int]  # "file:function" -> lines, in the median call, most first
    tracer: str  # what counted them: "sys.settrace on cpython 3.12"
    count_s: float  # wall time of the counted calls (the trace function slows them)

    @property
    def lines(self) -> float:
        return float(statistics.median(self.lines_per_call))

    @property
    def calls(self) -> float:
        return float(statistics.median(self.calls_per_call))

    @property
    def spread(self) -> float:
        """How far the counted calls' line totals lie apart, relative to their smallest."""
        low, high = min(self.lines_per_call), max(self.lines_per_call)
        return (high - low) / low if low else 0.0 if high == 0 else float("inf")

    @property
    def unsteady(self) -> str:
        """Why the count cannot be gated ("" : it can)."""
        if self.spread <= STEADY_SPREAD:
            return ""
        shown = ", ".join(str(n) for n in self.lines_per_call)
        return f"the counted calls ran different numbers of Python lines ({shown}): the step's host work varies"


def tracer_name() -> str:
    version = sys.version_info
    return f"sys.settrace on {sys.implementation.name} {version.major}.{version.minor}"


# The plugin's own frames around the step (gpu_profiler's wrapper, pytest-benchmark's) are not the
# step's work: a release that changes them must not change every test's count.
PLUGIN_FOLDER = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class _Counter:
    def __init__(self) -> None:
        self.lines: dict[CodeType, int] = {}
        self.calls = 0

    def on_call(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if event != "call" or frame.f_code.co_filename.startswith(PLUGIN_FOLDER):
            return None
        self.calls += 1
        self.lines.setdefault(frame.f_code, 0)
        return self.on_line

    def on_line(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if event == "line":
            self.lines[frame.f_code] += 1
        return self.on_line


def count_once(step: Callable[[], Any]) -> tuple[int, int, dict[CodeType, int]]:
    """Lines and calls of one call of ``step``, and the lines by code object."""
    counter = _Counter()
    previous = sys.gettrace()
    sys.settrace(counter.on_call)
    try:
        step()
    finally:
        sys.settrace(previous)
    return sum(counter.lines.values()), counter.calls, counter.lines


def count_host_work(step: Callable[[], Any], calls: int) -> HostWork:
    """Count ``calls`` calls of ``step`` one by one (calls >= 1)."""
    started = time.perf_counter()
    counted = [count_once(step) for _ in range(calls)]
    spent = time.perf_counter() - started
    lines = tuple(c[0] for c in counted)
    median_call = sorted(counted, key=lambda c: c[0])[len(counted) // 2]
    return HostWork(lines, tuple(c[1] for c in counted), by_function(median_call[2]), tracer_name(), spent)


def by_function(lines: dict[CodeType, int]) -> dict[str, int]:
    """Lines per "file:function", most first (ties by name), the FUNCTIONS_KEPT largest."""
    named: dict[str, int] = {}
    for code, n in lines.items():
        if n:
            key = function_name(code)
            named[key] = named.get(key, 0) + n
    ranked = sorted(named.items(), key=lambda item: (-item[1], item[0]))
    return dict(ranked[:FUNCTIONS_KEPT])


def function_name(code: CodeType) -> str:
    """``path:qualified name``, the path as it reads on any machine: from the package folder for
    installed code, relative to the current folder for a project's own."""
    qualified = getattr(code, "co_qualname", code.co_name)  # co_qualname from Python 3.11
    return f"{short_path(code.co_filename)}:{qualified}"


def short_path(filename: str) -> str:
    for marker in ("site-packages", "dist-packages"):
        _, found, after = filename.rpartition(f"{marker}{os.sep}")
        if found:
            return after
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if relative.startswith("..") else relative
