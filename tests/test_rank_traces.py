"""Two-rank traces recorded on two GPUs (``tests/data/traces/ranks/``): who the job waits for,
what computation and communication each rank did, and each rank's class. Computation and
exposed communication are also recomputed by brute force on integer-nanosecond bitmaps."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from pytest_gpuperf import analyze, load
from pytest_gpuperf.analysis.ranks import with_balance
from tests.traces import DATA

RANKS = DATA / "ranks"


def job(case: str) -> list[Any]:
    return [analyze(load(RANKS / case / f"rank{rank}.json.gz")) for rank in (0, 1)]


def classes(case: str) -> list[str]:
    ranked, _ = with_balance(job(case))
    return [m.primary.classification.kind for m in ranked]


def test_the_straggler_is_named_and_its_victim_is_not_called_communication_bound() -> None:
    ranked, found = with_balance(job("straggler"))
    assert found is not None and found.straggler_rank == 1 and found.matched == 3 and not found.note
    assert found.compute_imbalance_pct == pytest.approx(24.931, abs=1e-3)
    times = {r.rank: (r.compute_us, r.nccl_us, r.exposed_us, r.wait_us) for r in found.ranks}
    assert times[0] == pytest.approx((1719.593, 627.498, 627.498, 494.069), abs=1e-3)
    assert times[1] == pytest.approx((2290.697, 133.429, 133.429, 0.0), abs=1e-3)
    victim = ranked[0].primary.classification
    assert victim.kind == "rank-imbalance"
    assert "rank 1 computes 33% longer per step" in victim.fix  # 2290.7 us against 1719.6 us
    assert found.late_rank == 1 and "the others wait" not in found.describe()
    assert classes("straggler") == ["rank-imbalance", "compute-bound"]
    # Alone, rank 0's trace shows only a long all-reduce nothing hides: the single-trace answer.
    assert job("straggler")[0].primary.classification.kind == "communication-bound"


def test_an_overlapped_all_reduce_is_reported_as_overlapped_not_communication_bound() -> None:
    ranked, found = with_balance(job("overlapped"))
    assert found is not None and found.compute_imbalance_pct < 10 and found.matched == 30
    assert classes("overlapped") == ["compute-bound", "compute-bound"]
    for metrics in ranked:
        device = metrics.primary
        assert device.nccl_overlap_pct == pytest.approx(78, abs=1)
        assert any(s.startswith("communication overlapped: NCCL kernels take") for s in device.classification.secondary)


def test_a_balanced_step_names_no_straggler_problem() -> None:
    _, found = with_balance(job("balanced"))
    assert found is not None and found.compute_imbalance_pct == pytest.approx(2.163, abs=1e-3)
    assert found.describe().startswith("balanced: computation per step within 2.2% between ranks")
    assert classes("balanced") == ["compute-bound", "compute-bound"]


def _ns(value: float) -> int:
    return round(value * 1000)


def brute_force(case: str, rank: int) -> tuple[float, float]:
    """(computation, exposed NCCL time) in us: device time by kind on a per-nanosecond map."""
    with gzip.open(RANKS / case / f"rank{rank}.json.gz", "rt") as f:
        events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    device = [e for e in events if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    origin = min(_ns(e["ts"]) for e in device)
    size = max(_ns(e["ts"] + e["dur"]) for e in device) - origin
    compute, comm = bytearray(size), bytearray(size)
    for e in device:
        start, length = _ns(e["ts"]) - origin, _ns(e["dur"])
        target = comm if e["cat"] == "kernel" and "nccl" in e["name"].lower() else compute
        target[start : start + length] = b"\x01" * length
    exposed = sum(1 for c, n in zip(compute, comm, strict=True) if n and not c)
    return compute.count(1) / 1000, exposed / 1000


@pytest.mark.parametrize("case", ["straggler", "overlapped", "balanced"])
def test_computation_and_exposed_communication_agree_with_brute_force(case: str) -> None:
    for rank, metrics in enumerate(job(case)):
        device = metrics.primary
        compute, exposed = brute_force(case, rank)
        # Each event's rounding to whole nanoseconds moves the sums by at most 1 ns an event.
        assert device.compute_us == pytest.approx(compute, abs=0.001 * device.device_ops)
        assert device.nccl_exposed_us == pytest.approx(exposed, abs=0.001 * device.device_ops)
