"""Trust checks on recorded H100 traces, each damaged the way profiler traces go wrong: the
undamaged ones raise nothing; each damage names what it makes unreliable, and those metrics
are then unavailable (never judged) with the reason."""

from __future__ import annotations

import copy
import gzip
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_gpuperf import analyze, load
from pytest_gpuperf.analysis.results import DeviceMetrics
from tests.helpers import FAST, replay_conftest
from tests.traces import DATA, RECORDED

DEVICE_CATS = ("kernel", "gpu_memcpy", "gpu_memset")


def _document(name: str) -> dict[str, Any]:
    with gzip.open(DATA / f"{name}.json.gz", "rt") as f:
        document: dict[str, Any] = json.load(f)
    return document


def _metrics(document: dict[str, Any], tmp_path: Path, step_ms: float | None = None) -> DeviceMetrics:
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(document))
    primary = analyze(load(path), step_ms=step_ms).primary
    assert primary is not None
    return primary


def _kernels(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in document["traceEvents"] if e.get("ph") == "X" and e.get("cat") == "kernel"]


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_traces_are_trusted(name: str) -> None:
    for device in analyze(load(DATA / f"{name}.json.gz")).devices:
        assert device.trust == ()


def test_graph_replays_without_their_kernels_are_under_recorded(tmp_path: Path) -> None:
    document = _document("decode_graph")
    graph_launches = {
        e["args"]["correlation"]
        for e in document["traceEvents"]
        if e.get("cat") == "cuda_runtime" and "GraphLaunch" in e.get("name", "")
    }
    assert graph_launches
    document["traceEvents"] = [
        e
        for e in document["traceEvents"]
        if not (e.get("cat") in DEVICE_CATS and e.get("args", {}).get("correlation") in graph_launches)
    ] + _extra_kernel(document, before_steps=False)  # other device work remains
    m = _metrics(document, tmp_path)
    assert [p.check for p in m.trust] == ["graph-under-recorded"]
    assert m.unavailable["gpu_active_pct"].startswith("unreliable trace: 2 of 2 CUDA-graph launches have no")
    assert "kernels_per_step" in m.unavailable


def test_a_graph_replay_missing_its_kernels_is_under_recorded_whatever_the_busy_time(tmp_path: Path) -> None:
    document = _document("decode_graph")
    assert _metrics(document, tmp_path, step_ms=4.0).trust == ()  # a host-paced graph step is idle, honestly
    launches = sorted(
        e["args"]["correlation"]
        for e in document["traceEvents"]
        if e.get("cat") == "cuda_runtime" and "GraphLaunch" in e.get("name", "")
    )
    document["traceEvents"] = [
        e
        for e in document["traceEvents"]
        if not (e.get("cat") in DEVICE_CATS and e.get("args", {}).get("correlation") == launches[-1])
    ]
    m = _metrics(document, tmp_path)
    assert [p.check for p in m.trust] == ["graph-under-recorded"]
    assert m.trust[0].detail.startswith("1 of 2 CUDA-graph launches have no device operations in the trace")


def test_busy_time_beyond_the_timed_step_means_work_that_is_not_the_step(tmp_path: Path) -> None:
    document = _document("gemm")  # busy 0.174 ms per step
    m = _metrics(document, tmp_path, step_ms=0.1)
    assert [p.check for p in m.trust] == ["busy-over-step"]
    assert set(m.trust[0].unreliable) == {"gpu_active_pct", "dispatch_ratio", "host_wait_pct"}
    assert _metrics(document, tmp_path, step_ms=0.17).trust == ()


def _extra_kernel(document: dict[str, Any], before_steps: bool) -> list[dict[str, Any]]:
    """A copy of the first kernel and of its launch with a fresh correlation id: 5 ms before the
    first profiled step began, or inside the first step."""
    first = min(_kernels(document), key=lambda e: e["ts"])
    step = min(e["ts"] for e in document["traceEvents"] if str(e.get("name", "")).startswith("ProfilerStep#"))
    kernel = copy.deepcopy(first)
    kernel["ts"] = step - 5000.0 if before_steps else step + 1.0
    kernel["args"]["correlation"] = 987654321
    launch = {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1,
              "ts": kernel["ts"] - 1.0, "dur": 0.5, "args": {"correlation": 987654321}}  # fmt: skip
    return [kernel, launch]


def test_work_from_before_the_first_step_is_outside_the_window(tmp_path: Path) -> None:
    document = _document("decode_eager")
    document["traceEvents"] += _extra_kernel(document, before_steps=True)
    m = _metrics(document, tmp_path)
    assert [p.check for p in m.trust] == ["outside-window"]
    assert "1 began before the first profiled step" in m.trust[0].detail
    assert "kernels_per_step" in m.unavailable


@pytest.mark.parametrize(
    ("start", "duration"),
    [(0.25, 0.5), (0.5, 1.0)],
    ids=["inside-another", "over-half-of-it"],
)
def test_operations_overlapping_on_one_stream_have_bad_timestamps(
    tmp_path: Path, start: float, duration: float
) -> None:
    document = _document("decode_eager")
    kernels = sorted(_kernels(document), key=lambda e: e["ts"])
    twin = copy.deepcopy(kernels[10])
    twin["ts"] += twin["dur"] * start  # starts while the original still runs, on its stream
    twin["dur"] *= duration
    document["traceEvents"].append(twin)
    m = _metrics(document, tmp_path)
    assert [p.check for p in m.trust] == ["stream-overlap"]
    assert m.trust[0].detail.startswith("1 device operations overlap an earlier one on the same stream (1 on stream 7)")
    assert "nccl_pct" in m.unavailable


def test_a_dependent_kernels_early_start_is_no_overlap() -> None:
    # torch.compile(mode="reduce-overhead") on the H200: cuBLASLt's split-K reduce starts 0.13 us
    # before its GEMM ends (a programmatic dependent launch), on the same stream, in every step.
    trace = load(DATA / "splitk_early_start.json.gz")
    ops = sorted(trace.device_ops, key=lambda o: o.start)
    early = [(a.name, b.name) for a, b in itertools.pairwise(ops) if b.stream == a.stream and b.start < a.end]
    assert len(early) == 3 and all("splitKreduce" in later for _, later in early)
    primary = analyze(trace).primary
    assert primary is not None and primary.trust == ()


def test_launches_the_join_cannot_match(tmp_path: Path) -> None:
    document = _document("decode_eager")
    dropped = {e["args"]["correlation"] for e in _kernels(document)[:3]}
    document["traceEvents"] = [
        e
        for e in document["traceEvents"]
        if not (e.get("cat") == "cuda_runtime" and e.get("args", {}).get("correlation") in dropped)
    ]
    m = _metrics(document, tmp_path)
    assert [p.check for p in m.trust] == ["unmatched-launches"]
    assert m.trust[0].detail.startswith("3 device operations match no launch on the host")


def test_an_unreliable_metric_is_not_judged_and_the_failure_says_why(pytester: pytest.Pytester) -> None:
    document = _document("decode_eager")
    document["traceEvents"] += _extra_kernel(document, before_steps=True)
    path = pytester.path / "damaged.json"
    path.write_text(json.dumps(document))
    replay_conftest(pytester, "[20.0]", trace=path)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu_budget(kernels_per_step_max=10, p50_ms=1)
        def test_step(gpu_profiler):
            gpu_profiler(lambda: None)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gpuperf", *FAST)
    result.assert_outcomes(failed=1)  # by its latency budget; kernels per step is not judged
    result.stdout.fnmatch_lines(
        [
            "  p50_ms = 20 ms * > budget 1 ms*",
            "  trace unreliable: device operations outside the profiled steps: 1 began before the first "
            "profiled step (unreliable: *kernels_per_step*); those metrics are not judged",
        ]
    )
    assert "kernels_per_step = " not in result.stdout.str()
