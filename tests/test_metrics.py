"""The metric definitions of DESIGN.md, pinned on tiny traces with known answers."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_gpuperf import analyze, load
from pytest_gpuperf.analysis.metrics import _median, _top_level
from pytest_gpuperf.analysis.results import DeviceMetrics
from pytest_gpuperf.analysis.trace import Trace
from tests.traces import cpu_op, kernel, runtime, step, trace


def metrics_of(*events: object, **top: object) -> DeviceMetrics:
    result = analyze(load(trace(*events, **top)))  # type: ignore[arg-type]
    assert result.primary is not None
    return result.primary


def test_gpu_active_is_the_union_over_streams_over_the_device_span() -> None:
    m = metrics_of(
        kernel(0, 4, stream=7),
        kernel(2, 4, stream=8),  # overlaps the first on another stream: counted once
        kernel(10, 2, stream=7),
        {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD", "ts": 14, "dur": 2, "args": {"device": 0}},
        {"ph": "X", "cat": "gpu_memset", "name": "Memset", "ts": 18, "dur": 2, "args": {"device": 0}},
    )
    assert m.busy_us == 12.0  # [0,6] + [10,12] + [14,16] + [18,20]
    assert m.span_us == 20.0
    assert m.gpu_active_pct == 60.0
    assert (m.kernels, m.device_ops) == (3, 5)
    assert m.kernel_us == 10.0  # summed, the overlap counted twice
    assert (m.memcpy.count, m.memcpy.total_us, m.memset.count, m.memset.total_us) == (1, 2.0, 1, 2.0)


def test_fractional_microseconds_are_kept() -> None:
    # 100 kernels of 0.9 us with 0.1 us gaps: 90% active. Rounding each timestamp to
    # whole microseconds would turn the kernels into 1 us each and report 100%.
    events = [kernel(i * 1.0 + 0.05, 0.9) for i in range(100)]
    m = metrics_of(*events)
    assert m.gpu_active_pct == pytest.approx(100 * 90.0 / 99.9)
    assert m.gaps.count == 99
    assert m.gaps.median_us == pytest.approx(0.1)


def test_dispatch_ratio_unions_nested_host_events_clips_to_the_span_and_drops_syncs() -> None:
    m = metrics_of(
        cpu_op(0, 10, "aten::linear"),  # [0,10] parent
        cpu_op(1, 8, "aten::mm"),  # nested: must not count twice
        runtime(2, 2, corr=1),  # nested launch
        kernel(5, 10, corr=1),  # device span [5, 25]
        runtime(12, 6, "cudaDeviceSynchronize"),  # [12,18]: a wait, not dispatch work
        cpu_op(20, 10, "aten::add"),  # [20,30], clipped to [20,25]
        runtime(21, 1, corr=2),
        kernel(23, 2, corr=2),
    )
    # host union clipped to [5,25]: [5,10] + [12,18] + [20,25] = 16; minus sync [12,18] = 10
    assert m.busy_us == 12.0
    assert m.dispatch_ratio == pytest.approx(10.0 / 12.0)


def test_dispatch_ratio_is_unavailable_without_host_events() -> None:
    m = metrics_of(kernel(0, 1), kernel(2, 1))
    assert m.dispatch_ratio is None
    assert "no host events" in m.unavailable["dispatch_ratio"]


def test_nccl_share_is_of_summed_kernel_durations() -> None:
    m = metrics_of(
        kernel(0, 30, "ncclDevKernel_AllReduce_Sum_bf16_RING_LL", stream=20),
        kernel(0, 60, "gemm", stream=7),  # overlapping compute: both durations count
        kernel(70, 10, "NCCLKernel_custom", stream=20),  # case-insensitive "nccl"
    )
    assert m.nccl_us == 40.0
    assert m.nccl_pct == pytest.approx(40.0)


def test_launches_join_by_correlation_and_count_each_host_call_once() -> None:
    m = metrics_of(
        runtime(0, 1, "cudaLaunchKernel", corr=1),
        runtime(1, 1, "cudaLaunchKernelExC", corr=2),
        runtime(2, 1, "cuLaunchKernelEx", corr=3, cat="cuda_driver"),
        runtime(3, 1, "cudaGraphLaunch", corr=4),
        runtime(4, 1, "cudaMemcpyAsync", corr=5),
        kernel(10, 1, corr=1),
        kernel(12, 1, corr=2),
        kernel(14, 1, corr=3),
        kernel(16, 1, corr=4),
        kernel(18, 1, corr=4),  # a second kernel of the same graph launch
        kernel(20, 1, corr=4),
        {
            "ph": "X",
            "cat": "gpu_memcpy",
            "name": "Memcpy DtoH",
            "ts": 22,
            "dur": 1,
            "args": {"device": 0, "correlation": 5},
        },
        kernel(24, 1, corr=99),  # no host call in the trace
        kernel(26, 1),  # no correlation at all
    )
    la = m.launches
    assert (la.runtime, la.driver, la.graph, la.other, la.unmatched_ops) == (2, 1, 1, 1, 2)
    assert m.launches_per_step == 4


def test_gaps_are_attributed_to_the_host_when_the_next_launch_started_after_the_gap_began() -> None:
    m = metrics_of(
        runtime(0, 1, corr=1),
        kernel(2, 3, corr=1),  # busy [2,5]
        runtime(1, 1, corr=2),  # launched long before: the gap [5,8] is not the host's
        kernel(8, 2, corr=2),  # busy [8,10]
        runtime(12, 1, corr=3),  # launched at 12, after the gap [10,14] began: the host's
        kernel(14, 1, corr=3),  # busy [14,15]
        kernel(20, 1),  # gap [15,20] with no launch to blame: not the host's
    )
    g = m.gaps
    assert g.count == 3
    assert g.total_us == 12.0  # 3 + 4 + 5
    assert (g.median_us, g.max_us) == (4.0, 5.0)
    assert g.host_us == 4.0
    assert g.host_share_pct == pytest.approx(100 * 4 / 12)


def test_per_step_values_divide_by_profiler_steps() -> None:
    m = metrics_of(
        step(0, 10, 5),
        step(10, 10, 6),
        step(10, 10, 6),  # the same step seen twice (two threads) counts once
        kernel(1, 2),
        kernel(4, 2),
        kernel(11, 2),
        kernel(14, 2),
    )
    assert m.steps == 2
    assert m.kernels_per_step == 2.0
    assert m.busy_us_per_step == 4.0


def test_step_annotations_are_not_host_work() -> None:
    # Older profilers wrote ProfilerStep# as a cpu_op; spanning the whole step, it
    # would make every trace look host-bound.
    m = metrics_of({**step(0, 100, 1), "cat": "cpu_op"}, cpu_op(0, 1), kernel(0, 10))
    assert m.dispatch_ratio == pytest.approx(0.1)


def test_multi_device_traces_are_measured_per_device_never_pooled() -> None:
    result = analyze(
        load(
            trace(
                kernel(0, 10, device=0),
                kernel(0, 1, "ncclKernel", device=1),
                kernel(9, 1, device=1),
                deviceProperties=[{"id": 0, "name": "NVIDIA H100 80GB HBM3"}, {"id": 1, "name": "NVIDIA A100"}],
            )
        )
    )
    d0, d1 = result.devices
    assert (d0.device, d0.gpu_active_pct, d0.device_name) == (0, 100.0, "NVIDIA H100 80GB HBM3")
    assert (d1.device, d1.gpu_active_pct, d1.nccl_pct) == (1, 20.0, 50.0)
    assert result.primary is d0  # the busiest device supplies the flat keys
    assert result.to_dict()["gpu_active_pct"] == 100.0
    assert [d["device"] for d in result.to_dict()["devices"]] == [0, 1]


def test_top_kernels_rank_by_total_time() -> None:
    m = metrics_of(kernel(0, 1, "a"), kernel(2, 1, "a"), kernel(4, 1, "a"), kernel(6, 5, "b"), kernel(12, 1, "c"))
    assert [(k.name, k.count, k.total_us, k.mean_us) for k in m.top_kernels] == [
        ("b", 1, 5.0, 5.0),
        ("a", 3, 3.0, 1.0),
        ("c", 1, 1.0, 1.0),
    ]
    assert m.top_kernels[0].pct_of_kernel_time == pytest.approx(100 * 5 / 9)
    assert len(analyze(load(trace(kernel(0, 1, "a"), kernel(2, 1, "b"))), top=1).primary.top_kernels) == 1  # type: ignore[union-attr]


def test_allocator_calls_over_one_millisecond_are_slow() -> None:
    m = metrics_of(
        runtime(0, 500, "cudaMalloc"),
        runtime(600, 2500, "cudaMalloc"),
        runtime(3200, 1200, "cudaFree"),
        kernel(0, 10),
        kernel(5000, 10),
    )
    assert (m.allocations.calls, m.allocations.slow, m.allocations.worst_ms) == (2, 1, 2.5)
    assert m.allocations.slow_total_us == 2500.0
    assert (m.frees.calls, m.frees.slow, m.frees.worst_ms) == (1, 1, 1.2)
    assert m.allocator_stall_us == 3700.0


def test_a_trace_without_device_events_marks_gpu_metrics_unavailable() -> None:
    result = analyze(load(trace(cpu_op(0, 10), runtime(1, 2))))
    assert result.devices == ()
    out = result.to_dict()
    assert out["gpu_active_pct"] is None
    assert "no GPU events" in out["unavailable"]["gpu_active_pct"]
    assert out["classification"]["kind"] == "unavailable"


def test_zero_length_operations_and_unsorted_events() -> None:
    m = metrics_of(kernel(10, 0), kernel(4, 2), kernel(0, 2), kernel(4, 0))
    assert (m.busy_us, m.span_us, m.kernels) == (4.0, 10.0, 4)


def test_rank_comes_from_distributed_info() -> None:
    result = analyze(load(trace(kernel(0, 1), distributedInfo={"rank": 3, "world_size": 4})))
    assert result.rank == 3


def test_host_syncs_are_counted_in_the_operator_that_made_them_and_top_level_operators_per_step() -> None:
    events = [
        step(0, 100, 1),
        step(100, 100, 2),
        cpu_op(0, 30, "aten::linear"),
        cpu_op(5, 20, "aten::addmm"),  # inside linear: not a top-level operator
        cpu_op(40, 20, "aten::item"),
        cpu_op(42, 15, "aten::_local_scalar_dense"),
        runtime(44, 10, "cudaStreamSynchronize"),  # .item(): the host waits for the GPU
        runtime(70, 5, "cudaDeviceSynchronize"),  # outside any operator: not counted
        cpu_op(100, 30, "aten::linear"),
        cpu_op(140, 20, "aten::to"),
        runtime(142, 10, "cudaMemcpyAsync", corr=9),  # to pageable host memory: blocking
        kernel(0, 20, "gemm"),
        kernel(143, 8, "Memcpy DtoH (Device -> Pageable)", corr=9, cat="gpu_memcpy"),
    ]
    m = metrics_of(*events)
    assert (m.cpu_ops, m.cpu_ops_per_step) == (4, 2.0)
    assert (m.host_syncs, m.host_syncs_per_step) == (2, 1.0)
    assert m.sync_ops == {"aten::item": 1, "aten::to": 1}


def test_top_level_operators_are_ranked_by_host_time_with_the_device_time_they_launched() -> None:
    events = [
        step(0, 100, 1),
        cpu_op(0, 30, "aten::linear"),
        cpu_op(5, 20, "aten::addmm"),  # inside linear: its launch is linear's
        runtime(6, 4, corr=1),
        cpu_op(40, 12, "aten::add"),
        runtime(41, 3, corr=2),
        cpu_op(60, 25, "aten::linear"),
        runtime(62, 4, corr=3),
        runtime(90, 4, corr=4),  # launched outside any operator: no operator's
        kernel(10, 50, "gemm", corr=1),
        kernel(60, 2, "add", corr=2),
        kernel(70, 40, "gemm", corr=3),
        kernel(110, 5, "other", corr=4),
    ]
    m = metrics_of(*events)
    assert [(o.name, o.calls, o.host_us, o.device_us) for o in m.top_operators] == [
        ("aten::linear", 2, 55.0, 90.0),
        ("aten::add", 1, 12.0, 2.0),
    ]


def test_a_trace_without_operators_has_no_operator_counts() -> None:
    m = metrics_of(kernel(0, 10, "gemm"), runtime(0, 1, "cudaStreamSynchronize"))
    assert "host_syncs_per_step" in m.unavailable and "cpu_ops_per_step" in m.unavailable


def _top_level_by_definition(ops: list[tuple[float, float]], names: list[str]) -> list[tuple[float, float, str]]:
    """The operators not inside another: in order of start, longest first, then trace order,
    an operator is top-level when it starts at or after the end of the last top-level one."""
    order = sorted(range(len(ops)), key=lambda i: (ops[i][0], -ops[i][1], i))
    top: list[tuple[float, float, str]] = []
    for i in order:
        start, end = ops[i]
        if not top or start >= top[-1][1]:
            top.append((start, end, names[i]))
    return top


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 4)), max_size=14))
def test_top_level_operators_match_their_definition_with_ties_and_zero_lengths(spans: list[tuple[int, int]]) -> None:
    # Small integers: many operators start together, end together or last no time.
    t = Trace("t")
    t.ops = [(float(start), float(start + length)) for start, length in spans]
    t.op_names = [f"op{i}" for i in range(len(spans))]
    top = _top_level(t)
    assert list(zip(top.starts, top.ends, top.names, strict=True)) == _top_level_by_definition(t.ops, t.op_names)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=9))
def test_the_gap_median_is_the_statistics_median(values: list[float]) -> None:
    assert _median(values) == statistics.median(values)
