"""pytest-xdist workers: one GPU each, and measurements that take turns on a shared GPU."""

from __future__ import annotations

import itertools
import json

import pytest

from pytest_gpuperf.gpus import assign, parse_gpus, visible_gpus, worker_index
from tests.helpers import FAST

SUITE = """
import json, os, time
import pytest

def record(name, start, end):
    line = {"worker": os.environ.get("PYTEST_XDIST_WORKER"), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "test": name, "start": start, "end": end}
    with open("log.jsonl", "a") as out:
        out.write(json.dumps(line) + "\\n")

@pytest.mark.parametrize("n", range(6))
def test_measured(gpu_profiler, n):
    calls = []  # when the step ran: only while this worker measures

    def step():
        calls.append(time.monotonic())
        time.sleep(0.001)

    gpu_profiler(step)
    record(f"measured{n}", calls[0], calls[-1])
"""


def run_suite(pytester: pytest.Pytester, *args: str) -> list[dict[str, object]]:
    pytester.makepyfile(test_gpus_suite=SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--gpuperf", *FAST, *args)
    result.assert_outcomes(passed=6)
    return [json.loads(line) for line in (pytester.path / "log.jsonl").read_text().splitlines()]


def test_each_worker_gets_its_own_gpu(pytester: pytest.Pytester) -> None:
    log = run_suite(pytester, "--gpuperf-gpus", "0,1")
    assert {(r["worker"], r["gpus"]) for r in log} == {("gw0", "0"), ("gw1", "1")}


def test_workers_sharing_a_gpu_measure_in_turn(pytester: pytest.Pytester) -> None:
    log = run_suite(pytester, "--gpuperf-gpus", "7")
    assert {r["gpus"] for r in log} == {"7"} and {r["worker"] for r in log} == {"gw0", "gw1"}
    spans = sorted((r["start"], r["end"], r["worker"]) for r in log)
    for (_, end, worker), (start, _, other) in itertools.pairwise(spans):
        if worker != other:
            assert start >= end, "two workers measured on one GPU at once"


@pytest.mark.no_cuda
def test_workers_without_a_gpu_measure_in_turn_on_the_shared_cpu(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    log = run_suite(pytester)
    assert {r["gpus"] for r in log} == {None} and {r["worker"] for r in log} == {"gw0", "gw1"}
    spans = sorted((r["start"], r["end"], r["worker"]) for r in log)
    for (_, end, worker), (start, _, other) in itertools.pairwise(spans):
        if worker != other:
            assert start >= end, "two workers measured on the CPU at once"


def test_gpu_lists_and_worker_indices() -> None:
    assert parse_gpus(" 0, 1 ,") == ["0", "1"]
    with pytest.raises(ValueError, match="expected GPU ids"):
        parse_gpus(" , ")
    assert visible_gpus("2,3", {"CUDA_VISIBLE_DEVICES": "0"}) == ["2", "3"]
    assert visible_gpus(None, {"CUDA_VISIBLE_DEVICES": "1,0"}) == ["1", "0"]
    assert worker_index({"PYTEST_XDIST_WORKER": "gw3"}) == 3 and worker_index({}) is None
    assert [assign(["0", "1"], w) for w in range(5)] == ["0", "1", "0", "1", "0"]


GPU_SUITE = """
import json, os
import pytest
import torch

@pytest.mark.parametrize("n", range(4))
def test_measured(gpu_profiler, n):
    x = torch.randn(2048, 2048, device="cuda")
    gpu_profiler(torch.mm, x, x)
    line = {"worker": os.environ.get("PYTEST_XDIST_WORKER"), "uuid": str(torch.cuda.get_device_properties(0).uuid)}
    with open("log.jsonl", "a") as out:
        out.write(json.dumps(line) + "\\n")
"""


@pytest.mark.gpu
def test_on_two_gpus_each_xdist_worker_measures_on_its_own_card(pytester: pytest.Pytester) -> None:
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    pytester.makepyfile(test_gpu_suite=GPU_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--gpuperf", *FAST)
    result.assert_outcomes(passed=4)
    log = [json.loads(line) for line in (pytester.path / "log.jsonl").read_text().splitlines()]
    cards = {r["worker"]: r["uuid"] for r in log}
    assert set(cards) == {"gw0", "gw1"} and len(set(cards.values())) == 2  # two workers, two cards
