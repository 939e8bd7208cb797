"""Nsight Compute's speed-of-light section, read from ``ncu --csv`` output (the details page:
one row per kernel launch and metric), summed per kernel name."""

from __future__ import annotations

import csv
from dataclasses import dataclass

from pytest_gpuperf.analysis.trace import TraceFormatError

# The speed-of-light metrics this reads, by the names ncu's details page gives them.
DURATION, COMPUTE, MEMORY, DRAM = "Duration", "Compute (SM) Throughput", "Memory Throughput", "DRAM Throughput"
_DURATION_UNITS_NS = {"ns": 1.0, "nsecond": 1.0, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6}
_COLUMNS = ("ID", "Kernel Name", "Metric Name", "Metric Unit", "Metric Value")


@dataclass(frozen=True)
class KernelThroughput:
    """One kernel's launches in the profiled step: time, and throughput as a share of the GPU's peak
    (weighted by each launch's duration)."""

    name: str
    launches: int
    time_us: float  # summed over its launches, as ncu timed them (ncu locks the clocks to base)
    compute_pct: float | None  # SM throughput
    memory_pct: float | None  # the busiest memory unit (L1, L2 or DRAM)
    dram_pct: float | None  # DRAM bandwidth

    def describe(self) -> str:
        shares = [
            f"{label} {value:.1f}%"
            for label, value in (("compute", self.compute_pct), ("memory", self.memory_pct), ("DRAM", self.dram_pct))
            if value is not None
        ]
        launches = f" ({self.launches} launches)" if self.launches > 1 else ""
        return f"{self.time_us / 1e3:.3f} ms{launches}: {', '.join(shares) or 'no throughput read'} of peak"


def read_speed_of_light(text: str, source: str) -> list[KernelThroughput]:
    """Kernels by time, most first. Raises TraceFormatError where ``text`` holds no ncu CSV table."""
    rows = _rows(text, source)
    launches: dict[str, dict[str, float]] = {}  # launch id -> metric -> value
    names: dict[str, str] = {}
    for row in rows:
        value = _number(row["Metric Value"])
        metric = row["Metric Name"]
        if value is None or metric not in (DURATION, COMPUTE, MEMORY, DRAM):
            continue
        if metric == DURATION:
            scale = _DURATION_UNITS_NS.get(row["Metric Unit"])
            if scale is None:
                unit = row["Metric Unit"]
                raise TraceFormatError(source, f"ncu reported Duration in {unit!r}, a unit not known here")
            value *= scale
        names[row["ID"]] = row["Kernel Name"]
        launches.setdefault(row["ID"], {})[metric] = value
    return sorted(_per_kernel(names, launches), key=lambda k: -k.time_us)


def _rows(text: str, source: str) -> list[dict[str, str]]:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID",')), None)
    if start is None:
        raise TraceFormatError(source, 'no ncu CSV table (a header starting with "ID")')
    reader = csv.DictReader(lines[start:])
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise TraceFormatError(source, f"the ncu table has no {', '.join(missing)} column (run ncu with --csv)")
    return [row for row in reader if row.get("ID", "").isdigit()]


def _number(text: str | None) -> float | None:
    try:
        return float((text or "").replace(",", ""))
    except ValueError:
        return None


def _per_kernel(names: dict[str, str], launches: dict[str, dict[str, float]]) -> list[KernelThroughput]:
    grouped: dict[str, list[dict[str, float]]] = {}
    for launch, name in names.items():
        grouped.setdefault(name, []).append(launches[launch])
    return [_kernel(name, found) for name, found in grouped.items()]


def _kernel(name: str, found: list[dict[str, float]]) -> KernelThroughput:
    time_ns = sum(m.get(DURATION, 0.0) for m in found)

    def weighted(metric: str) -> float | None:
        read = [(m[metric], m.get(DURATION, 0.0)) for m in found if metric in m]
        if not read:
            return None
        weight = sum(w for _, w in read)
        if weight <= 0:
            return sum(v for v, _ in read) / len(read)
        return sum(v * w for v, w in read) / weight

    return KernelThroughput(name, len(found), time_ns / 1e3, weighted(COMPUTE), weighted(MEMORY), weighted(DRAM))
