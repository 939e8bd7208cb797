"""The brute-force oracle for a recorded trace's metrics, independent of the package: the raw
JSON is read again, every time is turned into integer nanoseconds, and busy/host time is
counted on a per-nanosecond bitmap (used by tests/test_real_traces.py and
benchmarks/analyze_agreement.py)."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from typing import Any, NamedTuple

from tests.traces import DATA

DEVICE_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}
HOST_CATS = {"cpu_op", "cuda_runtime", "cuda_driver"}


def _ns(value: float) -> int:
    return round(value * 1000)


class BruteForce(NamedTuple):
    gpu_active_pct: float
    dispatch_ratio: float
    kernels: int
    device_ops: int
    busy_us: float
    nccl_pct: float
    launches: Counter[str]


def brute_force(name: str) -> BruteForce:
    with gzip.open(DATA / f"{name}.json.gz", "rt") as f:
        events: list[dict[str, Any]] = json.load(f)["traceEvents"]
    complete = [e for e in events if e.get("ph") == "X"]
    device = [e for e in complete if e.get("cat") in DEVICE_CATS]
    host = [e for e in complete if e.get("cat") in HOST_CATS and not e["name"].startswith("ProfilerStep#")]
    origin = _ns(min(e["ts"] for e in device))
    lo = 0
    hi = max(_ns(e["ts"] + e["dur"]) for e in device) - origin
    busy = bytearray(hi - lo)
    for e in device:
        start = _ns(e["ts"]) - origin
        busy[start : start + _ns(e["dur"])] = b"\x01" * _ns(e["dur"])
    busy_ns = busy.count(1)
    host_map = bytearray(hi - lo)
    for e in host:
        start, end = max(_ns(e["ts"]) - origin, lo), min(_ns(e["ts"] + e["dur"]) - origin, hi)
        if end > start:
            host_map[start:end] = b"\x01" * (end - start)
    for e in host:
        if "Synchronize" in e["name"]:
            start, end = max(_ns(e["ts"]) - origin, lo), min(_ns(e["ts"] + e["dur"]) - origin, hi)
            if end > start:
                host_map[start:end] = bytes(end - start)
    kernels = [e for e in device if e["cat"] == "kernel"]
    kernel_ns = sum(_ns(e["dur"]) for e in kernels)
    nccl_ns = sum(_ns(e["dur"]) for e in kernels if "nccl" in e["name"].lower())
    api = {e["args"]["correlation"]: e["name"] for e in host if "correlation" in e.get("args", {})}
    launches: Counter[str] = Counter()
    for corr in {e["args"].get("correlation") for e in device}:
        call = api.get(corr, "unmatched")
        launches[
            "graph"
            if "GraphLaunch" in call
            else "runtime"
            if call.startswith("cudaLaunch")
            else "driver"
            if call.startswith("cuLaunch")
            else "unmatched"
            if call == "unmatched"
            else "other"
        ] += 1
    return BruteForce(
        100.0 * busy_ns / (hi - lo),
        host_map.count(1) / busy_ns,
        len(kernels),
        len(device),
        busy_ns / 1000.0,
        100.0 * nccl_ns / kernel_ns if kernel_ns else 0.0,
        launches,
    )
