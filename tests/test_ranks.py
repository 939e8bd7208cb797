from __future__ import annotations

import pytest

from pytest_gpuperf import analyze, load
from pytest_gpuperf.analysis.ranks import RanksReport, rank_spread, with_balance
from pytest_gpuperf.analysis.results import TraceMetrics
from tests.traces import kernel, step, trace


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


def straggler_job() -> list[TraceMetrics]:
    """Two steps of GEMMs then an all-reduce; rank 1 computes 50% longer, so rank 0's all-reduce
    (10 us of transfer) waits 50 us for it."""
    ranks = []
    for rank, gemm in ((0, 100.0), (1, 150.0)):
        events = []
        for n, start in enumerate((0.0, 200.0)):
            events += [kernel(start, gemm, "gemm"), kernel(start + gemm, 160.0 - gemm, "ncclDevKernel_AllReduce")]
            events.append(step(start, 200.0, n))
        ranks.append(analyze(load(trace(*events, distributedInfo={"rank": rank}))))
    return ranks


def test_the_straggler_is_the_rank_that_computes_longest_and_its_victim_waits() -> None:
    job = straggler_job()
    # On its own, rank 0's trace shows a long all-reduce that nothing hides: communication-bound.
    alone = job[0].primary
    assert alone is not None and alone.classification is not None
    assert alone.classification.kind == "communication-bound"
    assert alone.compute_us == 200.0 and alone.nccl_exposed_us == 120.0 and alone.collective_us == (60.0, 60.0)
    ranked, found = with_balance(job)
    assert found is not None and found.straggler_rank == 1 and found.matched == 2
    assert found.compute_imbalance_pct == pytest.approx(100 * 50 / 150)
    waits = {r.rank: (r.compute_us, r.nccl_us, r.exposed_us, r.wait_us) for r in found.ranks}
    assert waits == {0: (100.0, 60.0, 60.0, 50.0), 1: (150.0, 10.0, 10.0, 0.0)}
    victim = ranked[0].primary
    assert victim is not None and victim.classification is not None
    assert victim.classification.kind == "rank-imbalance"
    assert "rank 1 computes 50% longer per step" in victim.classification.fix
    assert (
        "waits inside NCCL collectives for a slower rank 27.8% of the step (50 us per step"
        in (victim.classification.evidence[0])
    )
    straggler = ranked[1].primary
    assert straggler is not None and straggler.classification is not None
    assert straggler.classification.kind not in ("rank-imbalance", "communication-bound")
    assert found.describe().startswith("straggler rank 1: computation 150 us per step, 50% more than rank 0's")


def test_a_rank_late_by_its_host_is_the_one_waited_for_not_the_straggler() -> None:
    """Rank 1 computes less, but its host starts each step's work 40 us late: rank 0, which
    computes most, waits for it in the all-reduce. The wait is rank 1's to fix, on its host."""
    ranks = []
    for rank, (gemm, late) in enumerate(((100.0, 0.0), (90.0, 40.0))):
        events = []
        for n, start in enumerate((0.0, 300.0)):
            reduce_at = start + late + gemm  # every rank's all-reduce ends at start + 140
            events += [kernel(start + late, gemm, "gemm"), kernel(reduce_at, start + 140 - reduce_at, "ncclAllReduce")]
            events.append(step(start, 300.0, n))
        ranks.append(analyze(load(trace(*events, distributedInfo={"rank": rank}))))
    ranked, found = with_balance(ranks)
    assert found is not None and found.straggler_rank == 0 and found.late_rank == 1
    assert {r.rank: r.wait_us for r in found.ranks} == {0: 30.0, 1: 0.0}
    assert found.describe().endswith("wait for rank 1, late to the collectives by its host, not its computation")
    waiting = ranked[0].primary
    assert waiting is not None and waiting.classification is not None
    assert waiting.classification.kind == "rank-imbalance"
    assert "the others wait for rank 1, whose computation per step is only 0%" in waiting.classification.evidence[1]
    assert waiting.classification.fix.startswith("speed up rank 1's host side")


def test_balanced_ranks_and_unequal_collective_counts_are_said() -> None:
    even = [
        analyze(load(trace(kernel(0, 100, "gemm"), kernel(100, 10, "ncclAllReduce"), distributedInfo={"rank": r})))
        for r in (0, 1)
    ]
    _, found = with_balance(even)
    assert found is not None and found.compute_imbalance_pct == 0.0
    assert found.describe().startswith("balanced: computation per step within 0.0% between ranks")
    extra = analyze(
        load(
            trace(
                kernel(0, 100, "gemm"), kernel(100, 10, "ncclAllReduce"), kernel(110, 10, "ncclAllReduce"),
                distributedInfo={"rank": 1},
            )
        )
    )  # fmt: skip
    _, found = with_balance([even[0], extra])
    assert found is not None and found.matched == 1
    assert "collective counts differ between ranks (1, 2): the last 1 matched" in found.describe()


def test_a_torchrun_ranks_report_names_the_straggler_from_the_ranks_figures() -> None:
    job = straggler_job()
    payloads = []
    for rank, metrics in enumerate(job):
        device = metrics.primary
        assert device is not None
        figures = {"steps": device.steps, "compute_us": device.compute_us, "nccl_us": device.nccl_us}
        figures |= {"exposed_us": device.nccl_exposed_us, "collective_us": list(device.collective_us)}
        payloads.append({"rank": rank, "p50_ms": 0.16, "p99_ms": 0.17 - rank * 0.005, "nccl_pct": None,
                         "nccl_us_per_step": None, **figures})  # fmt: skip
    report = RanksReport.of(payloads)
    assert report.slowest.rank == 0  # the victim has the longer tail
    found = report.balance
    assert found is not None and found.straggler_rank == 1
    assert "straggler rank 1: computation 150 us per step" in report.describe()
    assert RanksReport.of([{**payloads[0], "steps": 0}, payloads[1]]).balance is None  # a rank without a trace
