from __future__ import annotations

import pytest

from pytest_gpuperf import analyze, load
from pytest_gpuperf.ranks import rank_spread
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
