"""Under torchrun: every rank calls a step with a collective equally often, rank 0 reports
every rank, and baselines are keyed by world size. Two CPU processes with gloo (the host
clock times them); the same code runs NCCL steps on GPUs."""

from __future__ import annotations

import json
import sys

import pytest

from pytest_gpuperf.analysis.ranks import RanksReport
from pytest_gpuperf.measuring.consensus import ALONE, launched_rank
from tests.helpers import FAST

# Rank 1's step is ten times slower than rank 0's, so each rank on its own would pick other
# warmup chunks, calls per round and round counts; the all-reduce in the step then hangs.
SUITE = """
import time

import pytest
import torch
import torch.distributed as dist


@pytest.fixture(scope="session", autouse=True)
def process_group():
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    yield


@pytest.mark.gpu_budget(p99_ms=5000, rank_imbalance_pct_max=10)
def test_all_reduce_step(gpu_profiler):
    tensor = torch.ones(1024)
    pause = 0.002 if dist.get_rank() == 1 else 0.0002

    def step():
        time.sleep(pause)
        dist.all_reduce(tensor)

    gpu_profiler(step)
"""


def torchrun(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.run(
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "--log-dir",
        str(pytester.path / "logs"),
        "--redirects",
        "3",  # each rank's stdout and stderr to its own file: their lines would interleave
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--gpuperf",
        *FAST,
        *args,
        timeout=300,
    )


def rank_output(pytester: pytest.Pytester, rank: int) -> pytest.LineMatcher:
    (log,) = (pytester.path / "logs").rglob(f"attempt_0/{rank}/stdout.log")
    return pytest.LineMatcher(log.read_text().splitlines())


def test_ranks_agree_on_every_call_and_rank_zero_reports_them_all(pytester: pytest.Pytester) -> None:
    pytest.importorskip("torch.distributed")
    pytester.makepyfile(test_job=SUITE)
    result = torchrun(pytester, "--gpuperf-update-baselines", "--gpuperf-json", "report.json")
    rank0, rank1 = (rank_output(pytester, rank) for rank in (0, 1))
    assert result.ret == 0, rank0.str()[-3000:] + rank1.str()[-3000:]
    rank0.fnmatch_lines(["test_job.py::test_all_reduce_step: 2 ranks: p50 * ms; slowest p99 * ms (rank ?)", "*passed*"])
    rank1.fnmatch_lines(["gpuperf: rank 1 of 2: rank 0 reports every rank", "*passed*"])
    assert "gpuperf =====" not in rank1.str()  # one report, from rank 0
    report = json.loads((pytester.path / "report.json").read_text())
    ranks = report["tests"][0]["ranks"]
    assert [r["rank"] for r in ranks["per_rank"]] == [0, 1]
    # Rank 1's step sleeps 2 ms: every call of rank 0 waited for it in the all-reduce.
    assert all(r["p50_ms"] >= 1.5 for r in ranks["per_rank"])
    budgets = {b["key"]: b for b in report["tests"][0]["budgets"]}
    imbalance = budgets["rank_imbalance_pct_max"]
    assert imbalance["status"] == "unavailable" and "no profiled pass with device work" in imbalance["reason"]
    baselines = list((pytester.path / "baselines").rglob("*.yaml"))
    assert [p.parent.name.endswith("-x2") for p in baselines] == [True]  # one file, keyed by world size


def test_outside_torchrun_a_process_is_alone() -> None:
    assert launched_rank({}) == (0, 1)
    assert launched_rank({"RANK": "3", "WORLD_SIZE": "4"}) == (3, 4)
    assert launched_rank({"RANK": "x", "WORLD_SIZE": "4"}) == (0, 1)
    assert ALONE.any(True) and not ALONE.any(False) and ALONE.max(7) == 7 and ALONE.gather({"a": 1}) == [{"a": 1}]


def test_a_ranks_report_names_the_slowest_rank_and_the_nccl_imbalance() -> None:
    report = RanksReport.of(
        [
            {"rank": 1, "p50_ms": 2.0, "p99_ms": 3.5, "nccl_pct": 40, "nccl_us_per_step": 800, "nccl_overlap_pct": 12},
            {"rank": 0, "p50_ms": 1.9, "p99_ms": 2.4, "nccl_pct": 30, "nccl_us_per_step": 600, "nccl_overlap_pct": 35},
        ]
    )
    assert [r.rank for r in report.results] == [0, 1]
    assert report.slowest.rank == 1
    assert report.nccl_imbalance_pct == pytest.approx(25.0)  # (800 - 600) / 800
    assert report.describe() == (
        "2 ranks: p50 1.9-2 ms; slowest p99 3.5 ms (rank 1); NCCL 30.0-40.0% of kernel time; "
        "12-35% of it overlapped by computation; NCCL time imbalance 25.0%"
    )
    one_unknown = RanksReport.of(
        [
            {"rank": 0, "p50_ms": 1.0, "p99_ms": 1.0, "nccl_pct": None, "nccl_us_per_step": None},
            {"rank": 1, "p50_ms": 1.0, "p99_ms": 1.0, "nccl_pct": 30.0, "nccl_us_per_step": 600.0},
        ]
    )
    assert one_unknown.nccl_imbalance_pct is None


# On two GPUs: GEMMs then an NCCL all-reduce; in one test rank 1 does 30% more GEMM work.
NCCL_SUITE = """
import os

import pytest
import torch
import torch.distributed as dist


@pytest.fixture(scope="session", autouse=True)
def process_group():
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if not dist.is_initialized():
        dist.init_process_group("nccl")
    yield


def gemms_then_all_reduce(gemms):
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16) / 64
    b = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16) / 64

    def step():
        out = a
        for _ in range(gemms):
            out = torch.mm(out, b)
        dist.all_reduce(out)

    return step


@pytest.mark.gpu_budget(rank_imbalance_pct_max=10)
def test_balanced(gpu_profiler):
    gpu_profiler(gemms_then_all_reduce(10))


@pytest.mark.gpu_budget(rank_imbalance_pct_max=10)
def test_straggler(gpu_profiler):
    gpu_profiler(gemms_then_all_reduce(13 if dist.get_rank() == 1 else 10))
"""


@pytest.mark.gpu
def test_on_two_gpus_the_straggler_is_named_and_its_imbalance_fails_the_budget(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "0")  # NVLink multicast stays off (shared hosts require it)
    pytester.makepyfile(test_job=NCCL_SUITE)
    result = torchrun(pytester, "--gpuperf-json", "report.json")
    rank0 = rank_output(pytester, 0)
    assert result.ret == 1, rank0.str()[-3000:]  # the straggler's test fails on every rank
    rank0.fnmatch_lines(["*compute_imbalance_pct = * > budget 10 %*"])
    report = {t["test"].split("::")[-1]: t for t in json.loads((pytester.path / "report.json").read_text())["tests"]}
    straggler = report["test_straggler"]
    assert straggler["ranks"]["balance"]["straggler_rank"] == 1
    assert straggler["ranks"]["balance"]["compute_imbalance_pct"] > 15  # 3 of 13 GEMMs: about 23%
    assert straggler["verdict"] == "FAIL" and straggler["bottleneck"]["kind"] == "rank-imbalance"
    balanced = report["test_balanced"]
    assert balanced["verdict"] == "pass" and balanced["ranks"]["balance"]["compute_imbalance_pct"] < 10
    assert balanced["bottleneck"]["kind"] != "rank-imbalance"
