from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_gpuperf.analysis.load import shown_name
from pytest_gpuperf.cli import main
from tests.traces import DATA, kernel, trace


def test_text_report_names_the_metrics_the_bottleneck_and_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(DATA / "decode_eager.json.gz"), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "device 0: NVIDIA H100 80GB HBM3" in out
    assert "GPU active      4.69 %" in out
    assert "dispatch ratio  16.57" in out
    assert "bottleneck      overhead-bound (trace)" in out
    assert "try first: capture the step as a CUDA graph" in out
    assert out.count("nvjet") + out.count("elementwise") >= 3  # three top-kernel rows


def test_json_keys_are_the_metric_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(DATA / "gemm.json.gz"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "gpu_active_pct",
        "busy_us",
        "span_us",
        "kernels",
        "device_ops",
        "dispatch_ratio",
        "nccl_pct",
        "launches",
        "gaps",
        "top_kernels",
        "memcpy",
        "memset",
        "allocations",
        "classification",
        "kernels_per_step",
        "busy_us_per_step",
        "devices",
        "steps",
    ):
        assert key in out, key
    assert out["classification"]["kind"] == "compute-bound"
    assert out["gpu_active_pct"] == pytest.approx(93.6059, abs=1e-4)


def test_several_traces_are_ranks_with_their_spread(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    paths = []
    for rank, nccl in enumerate((2.0, 4.0)):
        path = tmp_path / f"rank{rank}.json"
        path.write_text(
            json.dumps(trace(kernel(0, 5, "gemm"), kernel(5, nccl, "ncclKernel"), distributedInfo={"rank": rank}))
        )
        paths.append(str(path))
    assert main(["analyze", *paths]) == 0
    assert "NCCL time imbalance (max-min)/max: 50.0 %" in capsys.readouterr().out
    assert main(["analyze", *paths, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in out["ranks"]] == [0, 1]
    assert out["spread"]["nccl_imbalance_pct"] == 50.0


def test_a_bad_trace_is_one_error_line_and_exit_code_two(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"traceEvents": [')
    assert main(["analyze", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gpuperf: error: {bad}: not valid JSON")
    assert err.count("\n") == 1


def test_a_host_only_trace_reports_gpu_metrics_unavailable(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps(trace({"ph": "X", "cat": "cpu_op", "name": "aten::add", "ts": 0, "dur": 1})))
    assert main(["analyze", str(path)]) == 0
    assert "GPU metrics unavailable: no GPU events" in capsys.readouterr().out


def test_a_cpu_only_trace_shows_what_its_host_did(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tests.traces import cpu_op

    events = [cpu_op(0, 30, "aten::linear"), cpu_op(2, 20, "aten::addmm"), cpu_op(40, 10, "aten::relu")]
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps(trace(*events)))
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "host: 40.0 us busy per step (operators, runtime and driver calls, merged), 2.0 top-level operators" in out
    assert out.index("aten::linear") < out.index("aten::relu") and "aten::addmm" not in out  # inside linear
    assert main(["analyze", str(path), "--json"]) == 0
    host = json.loads(capsys.readouterr().out)["host"]
    assert host["busy_us"] == 40.0 and host["cpu_ops"] == 2
    assert [o["name"] for o in host["top_operators"]] == ["aten::linear", "aten::relu"]


def test_console_script_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_gpuperf.cli", "analyze", "--help"], capture_output=True, text=True, check=True
    )
    assert "--json" in done.stdout and "--top" in done.stdout


def test_the_command_writes_all_its_output_and_its_exit_code_before_leaving(tmp_path: Path) -> None:
    # The console script leaves with os._exit (no interpreter teardown): what it printed must be flushed first.
    trace_path = str(DATA / "prefill.json.gz")
    done = subprocess.run(
        [sys.executable, "-m", "pytest_gpuperf.cli", "analyze", "--json", trace_path], capture_output=True, text=True
    )
    assert done.returncode == 0 and json.loads(done.stdout)["source"] == trace_path
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    done = subprocess.run(
        [sys.executable, "-m", "pytest_gpuperf.cli", "analyze", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 2 and "not valid JSON" in done.stderr


def test_several_traces_name_the_straggler_by_computation(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    paths = []
    for rank, gemm in enumerate((100.0, 150.0)):  # rank 1 computes longer; rank 0 waits in the all-reduce
        path = tmp_path / f"rank{rank}.json"
        events = [kernel(0, gemm, "gemm"), kernel(gemm, 160.0 - gemm, "ncclDevKernel_AllReduce")]
        path.write_text(json.dumps(trace(*events, distributedInfo={"rank": rank})))
        paths.append(str(path))
    assert main(["analyze", *paths, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["spread"]["straggler_rank"] == 1 and out["balance"]["straggler_rank"] == 1
    assert out["ranks"][0]["classification"]["kind"] == "rank-imbalance"
    assert main(["analyze", *paths]) == 0
    text = capsys.readouterr().out
    assert "bottleneck      rank-imbalance (ranks)" in text
    assert "straggler rank 1: computation 150 us per step, 50% more than rank 0's (imbalance 33.3%)" in text


@given(st.text(alphabet="a./", max_size=12))
def test_a_trace_is_named_by_its_path_as_pathlib_writes_it(path: str) -> None:
    assert shown_name(path) == str(Path(path))


def test_the_report_names_the_trace_by_its_normalized_path(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(DATA.parent)
    assert main(["analyze", f".//{DATA.name}/./gemm.json.gz", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == f"{DATA.name}/gemm.json.gz"


def test_numbers_json_cannot_hold_are_null_with_a_note(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tests.traces import cpu_op

    path = tmp_path / "flops.json"
    events = [cpu_op(0, 5, "aten::mm", flops=1.5e308), cpu_op(6, 5, "aten::mm", flops=1.5e308), kernel(1, 8)]
    path.write_text(json.dumps(trace(*events)))
    assert main(["analyze", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["flops"] is None
    assert "flops: inf is not a finite number; written as null" in out["notes"]
