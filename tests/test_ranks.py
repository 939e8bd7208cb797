from __future__ import annotations

import pytest

from pytest_gpuperf import analyze, load
from pytest_gpuperf.analysis.ranks import rank_spread
from tests.traces import kernel, trace


def test_spread_between_ranks_and_nccl_imbalance() -> None:
    rank0 = analyze(load(trace(kernel(0, 8, "gemm"), kernel(8, 2, "ncclAllReduce"), distributedInfo={"rank": 0})))
    rank1 = analyze(
        load(
            trace(
                kernel(0, 6, "gemm"),
                kernel(8, 2, "ncclAllReduce"),
                kernel(10, 2, "ncclAllReduce"),
                distributedInfo={"rank": 1},
            )
        )
    )
    spread = rank_spread([rank1, rank0])
    assert spread.ranks == (1, 0)
    active = {s.metric: s for s in spread.metrics}["gpu_active_pct"]
    assert (active.minimum, active.min_rank, active.maximum, active.max_rank) == (
        pytest.approx(83.333, abs=1e-3),
        1,
        100.0,
        0,
    )
    assert active.spread == pytest.approx(100 - 83.333, abs=1e-3)
    assert spread.nccl_imbalance_pct == pytest.approx(50.0)  # (4 - 2) / 4


def test_ranks_without_distributed_info_are_numbered_by_position() -> None:
    spread = rank_spread([analyze(load(trace(kernel(0, 1)))), analyze(load(trace(kernel(0, 2))))])
    assert spread.ranks == (0, 1)
    assert spread.nccl_imbalance_pct is None


def test_nccl_overlap_is_the_share_of_nccl_time_other_device_work_ran_alongside() -> None:
    # An all-reduce on its own stream from 4 to 12 us; a GEMM runs 0-6 and a copy 10-11: of the
    # 8 us of NCCL time, 2 (GEMM) + 1 (copy) are overlapped.
    m = analyze(
        load(
            trace(
                kernel(0, 6, "gemm", stream=7),
                kernel(4, 8, "ncclDevKernel_AllReduce_Sum_f32_RING_LL", stream=20),
                kernel(10, 1, "memcpy", stream=7, cat="gpu_memcpy"),
            )
        )
    ).primary
    assert m is not None and m.nccl_overlap_pct == pytest.approx(37.5)
    none = analyze(load(trace(kernel(0, 6, "gemm")))).primary
    assert none is not None and none.nccl_overlap_pct is None
    assert none.unavailable["nccl_overlap_pct"] == "no NCCL kernels in the trace"


def test_interval_intersection() -> None:
    from pytest_gpuperf.analysis.intervals import intersect

    assert intersect([(0, 4), (6, 10)], [(2, 7), (9, 12)]) == [(2, 4), (6, 7), (9, 10)]
    assert intersect([(0, 1)], [(1, 2)]) == [] and intersect([], [(0, 1)]) == []
