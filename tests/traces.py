"""Builders for tiny Chrome traces with exactly known metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "traces"
RECORDED = ("decode_eager", "decode_graph", "prefill", "gemm", "copy", "alloc")


def kernel(
    ts: float,
    dur: float,
    name: str = "k",
    *,
    corr: int | None = None,
    device: int = 0,
    stream: int = 7,
    cat: str = "kernel",
) -> dict[str, Any]:
    args: dict[str, Any] = {"device": device, "stream": stream}
    if corr is not None:
        args["correlation"] = corr
    return {"ph": "X", "cat": cat, "name": name, "pid": device, "tid": stream, "ts": ts, "dur": dur, "args": args}


def runtime(
    ts: float, dur: float, name: str = "cudaLaunchKernel", *, corr: int | None = None, cat: str = "cuda_runtime"
) -> dict[str, Any]:
    args: dict[str, Any] = {} if corr is None else {"correlation": corr}
    return {"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": 1, "ts": ts, "dur": dur, "args": args}


def cpu_op(ts: float, dur: float, name: str = "aten::add", **args: Any) -> dict[str, Any]:
    return {"ph": "X", "cat": "cpu_op", "name": name, "pid": 1, "tid": 1, "ts": ts, "dur": dur, "args": args}


def step(ts: float, dur: float, n: int) -> dict[str, Any]:
    return {"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{n}", "pid": 1, "tid": 1, "ts": ts, "dur": dur}


def trace(*events: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"traceEvents": list(events), **top}
