"""Metrics of traces recorded on an H100 with this project's own workloads.

Each pinned value is also recomputed by brute force (tests/oracle.py), independently of
the package.
Recorded with ``python -m benchmarks.record_traces OUTDIR`` (see data/traces/README.md).
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from pytest_gpuperf import analyze, load
from tests.oracle import brute_force
from tests.traces import DATA, RECORDED


class Pin(NamedTuple):
    gpu_active_pct: float
    dispatch_ratio: float
    kernels: int
    device_ops: int
    steps: int
    busy_us: float
    bottleneck: str
    method: str


PINS = {
    "decode_eager": Pin(4.6892, 16.5673, 1004, 1006, 2, 2033.992, "overhead-bound", "trace"),
    "decode_graph": Pin(80.5664, 0.4470, 1004, 1006, 2, 1929.153, "memory-bound", "heuristic"),
    "prefill": Pin(94.3341, 0.6369, 988, 1070, 2, 38872.232, "compute-bound", "roofline"),
    "gemm": Pin(93.6059, 0.2915, 2, 4, 2, 347.141, "compute-bound", "roofline"),
    "copy": Pin(99.3118, 0.0230, 0, 8, 2, 5038.364, "memory-bound", "trace"),
    "alloc": Pin(44.2417, 1.7366, 16, 16, 2, 6019.389, "allocation-stalls", "trace"),
}


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_trace_metrics_are_pinned(name: str) -> None:
    result = analyze(load(DATA / f"{name}.json.gz"))
    m, pin = result.primary, PINS[name]
    assert m is not None and m.device_name == "NVIDIA H100 80GB HBM3"
    assert m.gpu_active_pct == pytest.approx(pin.gpu_active_pct, abs=1e-4)
    assert m.dispatch_ratio == pytest.approx(pin.dispatch_ratio, abs=1e-4)
    assert (m.kernels, m.device_ops, m.steps) == (pin.kernels, pin.device_ops, pin.steps)
    assert m.busy_us == pytest.approx(pin.busy_us, abs=1e-3)
    assert m.classification is not None
    assert (m.classification.kind, m.classification.method) == (pin.bottleneck, pin.method)


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_trace_metrics_agree_with_brute_force(name: str) -> None:
    m = analyze(load(DATA / f"{name}.json.gz")).primary
    truth = brute_force(name)
    assert m is not None
    # Nanosecond rounding of each boundary is the only difference allowed.
    assert m.gpu_active_pct == pytest.approx(truth.gpu_active_pct, abs=0.01)
    assert m.dispatch_ratio == pytest.approx(truth.dispatch_ratio, rel=0.005)
    assert m.busy_us == pytest.approx(truth.busy_us, abs=0.01 * m.device_ops)
    assert (m.kernels, m.device_ops) == (truth.kernels, truth.device_ops)
    assert (m.nccl_pct or 0.0) == pytest.approx(truth.nccl_pct)
    launched = {
        "runtime": m.launches.runtime,
        "driver": m.launches.driver,
        "graph": m.launches.graph,
        "other": m.launches.other,
    }
    assert {k: v for k, v in launched.items() if v} == {k: v for k, v in truth.launches.items() if k != "unmatched"}


def test_eager_decode_is_overhead_bound_with_the_cuda_graph_advice() -> None:
    m = analyze(load(DATA / "decode_eager.json.gz")).primary
    assert m is not None and m.classification is not None
    assert m.classification.kind == "overhead-bound"
    assert "CUDA graph" in m.classification.fix
    assert "torch.compile" in m.classification.fix  # hundreds of small elementwise kernels
    assert m.dispatch_ratio is not None and m.dispatch_ratio > 5
    assert m.gaps.host_share_pct > 90


def test_graph_decode_is_not_overhead_bound_and_launches_once_per_step() -> None:
    m = analyze(load(DATA / "decode_graph.json.gz")).primary
    assert m is not None and m.classification is not None
    assert m.classification.kind != "overhead-bound"
    assert m.launches.graph == m.steps
    eager = analyze(load(DATA / "decode_eager.json.gz")).primary
    assert eager is not None and eager.dispatch_ratio is not None and m.dispatch_ratio is not None
    assert m.kernels_per_step == eager.kernels_per_step  # same work, one launch
    assert m.gpu_active_pct > 10 * eager.gpu_active_pct


def test_decode_matmuls_sit_left_of_the_ridge_and_prefill_right_of_it() -> None:
    decode = load(DATA / "decode_eager.json.gz")
    prefill = load(DATA / "prefill.json.gz")
    intensity = [sum(op.flops for op in t.flop_ops) / sum(op.bytes for op in t.flop_ops) for t in (decode, prefill)]
    assert intensity[0] < 5 < 200 < intensity[1]
    m = analyze(decode).primary
    assert m is not None and m.classification is not None
    assert any(s.startswith("memory-bound: arithmetic intensity") for s in m.classification.secondary)


def test_gemm_flops_are_computed_from_shapes() -> None:
    gemm = load(DATA / "gemm.json.gz")
    assert [op.name for op in gemm.flop_ops] == ["aten::mm", "aten::mm"]
    assert all(op.flops == 2 * 4096**3 for op in gemm.flop_ops)
    assert all(op.bytes == 3 * 4096 * 4096 * 2 for op in gemm.flop_ops)
