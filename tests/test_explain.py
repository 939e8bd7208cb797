"""Explaining a failure: the memory peak of a memory-profiled call (a real HF prefill trace from
the H200), Nsight Compute's speed-of-light table (real ncu output), and the plugin running
both for a failing test (the ncu child through a stand-in ncu that hands back recorded output)."""

from __future__ import annotations

import csv
import gzip
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from pytest_gpuperf.analysis.memory import read_memory_peak
from pytest_gpuperf.analysis.ncu import read_speed_of_light
from pytest_gpuperf.analysis.trace import TraceFormatError
from pytest_gpuperf.measuring.ncu import TARGET_ENV, ncu_command, run_under_ncu
from tests.conftest import REPO_ON_PATH

DATA = Path(__file__).parent / "data"
MEMORY_TRACE = DATA / "traces" / "memory_hf_prefill.json.gz"
NCU_MLP = DATA / "ncu" / "compiled_mlp.csv"
NCU_PREFILL = DATA / "ncu" / "hf_prefill.csv.gz"


# --- the memory peak ------------------------------------------------------------------------------------------


def _memory_events() -> list[dict[str, object]]:
    document = json.loads(gzip.decompress(MEMORY_TRACE.read_bytes()))
    return [e for e in document["traceEvents"] if e.get("name") == "[memory]" and e["args"]["Device Type"] == 1]


def test_the_peak_is_the_allocators_highest_total_and_its_blocks_are_those_still_held() -> None:
    peak = read_memory_peak(MEMORY_TRACE)
    assert peak is not None
    events = sorted(_memory_events(), key=lambda e: e["ts"])  # type: ignore[arg-type, return-value]
    totals = [e["args"]["Total Allocated"] for e in events]  # type: ignore[index]
    assert peak.peak_bytes == max(totals) == 532_712_448
    # Brute force: every allocation up to the peak whose address no later free (up to the peak) released.
    upto = events[: totals.index(max(totals)) + 1]
    held = []
    for i, e in enumerate(upto):
        size, address = e["args"]["Bytes"], e["args"]["Addr"]  # type: ignore[index]
        if size > 0 and not any(f["args"]["Addr"] == address and f["args"]["Bytes"] < 0 for f in upto[i + 1 :]):  # type: ignore[index]
            held.append(size)
    assert sorted(a.bytes for a in peak.held) == sorted(held)
    assert peak.before_bytes + sum(held) == peak.peak_bytes
    assert peak.allocations == sum(1 for e in events if e["args"]["Bytes"] > 0)  # type: ignore[index]


def test_a_block_is_named_by_its_operators_module_and_the_model_code_that_made_it() -> None:
    peak = read_memory_peak(MEMORY_TRACE)
    assert peak is not None
    largest = peak.held[0]
    # The logits of a 4 x 512-token prefill over a 32000-word vocabulary, bf16: 125 MiB and a little.
    assert largest.bytes == 126 * 2**20
    assert largest.operators[0] == "aten::linear" and largest.operators[-1] == "aten::mm"
    assert largest.module == "Linear_28"
    assert largest.frame == "transformers/models/llama/modeling_llama.py(436): forward"
    assert peak.lines(shown=2) == [
        "memory at the peak on cuda:0: 508.0 MiB allocated, 370.0 MiB of it held from before the step, "
        "138.0 MiB made in the step",
        "  126.0 MiB by aten::mm in aten::linear, Linear_28, at "
        "transformers/models/llama/modeling_llama.py(436): forward",
        "  4.0 MiB by aten::mul, LlamaRMSNorm_8, at transformers/models/llama/modeling_llama.py(62): forward",
        "  and 8 smaller blocks, 8.0 MiB",
    ]


def test_a_trace_without_cuda_allocations_has_no_peak_and_a_broken_one_is_named(tmp_path: Path) -> None:
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 1, "dur": 2}]}))
    assert read_memory_peak(plain) is None
    broken = tmp_path / "broken.json"
    broken.write_text('{"traceEvents": [')
    with pytest.raises(TraceFormatError, match=r"broken\.json"):
        read_memory_peak(broken)


# --- Nsight Compute ------------------------------------------------------------------------------------------


def test_speed_of_light_rows_become_one_line_per_kernel_by_time() -> None:
    kernels = read_speed_of_light(NCU_MLP.read_text(), str(NCU_MLP))
    assert [k.launches for k in kernels] == [1] * 5
    assert [k.time_us for k in kernels] == sorted((k.time_us for k in kernels), reverse=True)
    gemm = kernels[1]
    assert gemm.name == "nvjet_sm90_tst_64x32_64x16_4x2_h_bz_splitK_bias_TNT"
    assert (gemm.time_us, gemm.compute_pct, gemm.memory_pct, gemm.dram_pct) == (7.968, 11.43, 23.36, 23.36)
    assert gemm.describe() == "0.008 ms: compute 11.4%, memory 23.4%, DRAM 23.4% of peak"


def test_a_kernel_launched_many_times_is_weighted_by_each_launchs_duration() -> None:
    text = gzip.decompress(NCU_PREFILL.read_bytes()).decode()
    kernels = read_speed_of_light(text, "prefill")
    assert sum(k.launches for k in kernels) == 182
    many = next(k for k in kernels if k.launches == 25)
    # By hand: columns by position (ID 0, Kernel Name 4, Metric Name 12, Metric Value 14), thousands separators.
    rows = [r for r in csv.reader(text.splitlines()) if len(r) > 14 and r[4] == many.name and r[14]]
    by_launch: dict[str, dict[str, float]] = {}
    for r in rows:
        by_launch.setdefault(r[0], {})[r[12]] = float(r[14].replace(",", ""))
    total = sum(m["Duration"] for m in by_launch.values())
    assert many.time_us == pytest.approx(total / 1e3)
    expected = sum(m["Compute (SM) Throughput"] * m["Duration"] for m in by_launch.values()) / total
    assert many.compute_pct == pytest.approx(expected)


def test_output_without_an_ncu_table_is_a_named_error() -> None:
    with pytest.raises(TraceFormatError, match="no ncu CSV table"):
        read_speed_of_light("==PROF== Connected to process 1\n==ERROR== ERR_NVGPUCTRPERM\n", "ncu.log")


def _stand_in_ncu(folder: Path, body: str) -> Path:
    """An executable named ncu that runs ``body`` (Python) with ncu's arguments in sys.argv."""
    folder.mkdir(exist_ok=True)
    script = folder / "ncu"
    script.write_text(f"#!{sys.executable}\nimport os, shutil, sys\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


REPLAYS_RECORDED_OUTPUT = f"""
log = sys.argv[sys.argv.index("--log-file") + 1]
assert sys.argv[sys.argv.index("--profile-from-start") + 1] == "off"
with open(os.environ["STAND_IN_SAW"], "a") as seen:
    seen.write(os.environ.get("{TARGET_ENV}", "") + "\\n" + " ".join(sys.argv) + "\\n")
shutil.copyfile({str(NCU_MLP)!r}, log)
"""


def test_run_under_ncu_reads_the_table_ncu_wrote(tmp_path: Path) -> None:
    ncu = _stand_in_ncu(tmp_path / "bin", REPLAYS_RECORDED_OUTPUT)
    log = tmp_path / "t.ncu.csv"
    env = dict(os.environ, STAND_IN_SAW=str(tmp_path / "saw"))
    report = run_under_ncu(
        ncu_command(str(ncu), log, ["python", "-m", "pytest", "t.py::t"]),
        target="t.py::t",
        cwd=tmp_path,
        log=log,
        timeout_s=60,
        env=env,
    )
    assert report.reason is None and report.launches == 5 and report.log == log
    target, argv = (tmp_path / "saw").read_text().splitlines()
    assert target == "t.py::t" and argv.endswith("--csv --log-file " + str(log) + " python -m pytest t.py::t")


def test_an_ncu_that_fails_says_why_in_its_own_words(tmp_path: Path) -> None:
    ncu = _stand_in_ncu(tmp_path / "bin", 'print("==ERROR== ERR_NVGPUCTRPERM - no access to counters"); sys.exit(1)')
    log = tmp_path / "t.ncu.csv"
    report = run_under_ncu(ncu_command(str(ncu), log, ["x"]), target="t", cwd=tmp_path, log=log, timeout_s=60)
    assert report.kernels == ()
    assert report.reason is not None and report.reason.startswith("ncu exited with 1 and profiled nothing")
    assert "ERR_NVGPUCTRPERM" in report.reason


def test_an_ncu_that_hangs_is_stopped(tmp_path: Path) -> None:
    ncu = _stand_in_ncu(tmp_path / "bin", "import time; time.sleep(30)")
    log = tmp_path / "t.ncu.csv"
    report = run_under_ncu(ncu_command(str(ncu), log, ["x"]), target="t", cwd=tmp_path, log=log, timeout_s=1)
    assert report.reason == "ncu did not finish in 1 s"


# --- the plugin -----------------------------------------------------------------------------------------------


def _replaying_conftest(pytester: pytest.Pytester, memory_trace: Path | None) -> None:
    pytester.makeconftest(
        f"""
        from pathlib import Path
        {REPO_ON_PATH}
        from tests.replay import ReplayBackend

        def pytest_gpuperf_make_backend(config, settings):
            memory = {str(memory_trace) if memory_trace else None!r}
            return ReplayBackend([2.0], peak_mem_mb=4096.0, memory_trace=Path(memory) if memory else None)
        """
    )


FAILING_TESTS = """
    import pytest

    @pytest.mark.gpu_budget(peak_mem_mb=1024)
    def test_memory(gpu_profiler):
        gpu_profiler(lambda: None)

    @pytest.mark.gpu_budget(p99_ms=1)
    def test_latency(gpu_profiler):
        gpu_profiler(lambda: None)
    """


def test_a_failing_memory_budget_names_the_peaks_blocks_and_keeps_the_timeline(pytester: pytest.Pytester) -> None:
    _replaying_conftest(pytester, MEMORY_TRACE)
    pytester.makepyfile(test_two=FAILING_TESTS)
    result = pytester.runpytest("--gpuperf", "--gpuperf-trace-dir", "traces", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_memory _*",
            "*peak_mem_mb = 4096 MB > budget 1024 MB*",
            "memory at the peak on cuda:0: 508.0 MiB allocated, 370.0 MiB of it held from before the step, *",
            "  126.0 MiB by aten::mm in aten::linear, Linear_28, at transformers/models/llama/modeling_llama.py(436)*",
            "memory timeline: traces/test_two.py_test_memory-*.memory.json",
            "memory-profiled trace (allocations, Python stacks): traces/test_two.py_test_memory-*.memory.pt.trace.*",
            "*_ test_latency _*",
        ]
    )
    # Its section only, up to the next ==== line (under CI=true the summary repeats every failure in full).
    latency_failure = result.stdout.str().split("_ test_latency _")[1].split("=====")[0]
    assert "memory at the peak" not in latency_failure  # no memory budget: no memory pass
    assert len(list((pytester.path / "traces").glob("*.memory.*"))) == 2


def test_with_traces_off_the_peak_is_still_named_but_no_file_is_promised(pytester: pytest.Pytester) -> None:
    _replaying_conftest(pytester, MEMORY_TRACE)
    pytester.makepyfile(test_two=FAILING_TESTS)
    result = pytester.runpytest("--gpuperf", "--gpuperf-save-traces", "none", "-p", "no:cacheprovider", "-k", "memory")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["memory at the peak on cuda:0: *"])
    assert "memory timeline" not in result.stdout.str()
    assert not (pytester.path / "gpuperf-traces").exists()


def test_gpuperf_ncu_runs_the_failing_test_alone_under_ncu_and_reads_its_table(pytester: pytest.Pytester) -> None:
    _replaying_conftest(pytester, None)
    pytester.makepyfile(test_two=FAILING_TESTS)
    _stand_in_ncu(pytester.path / "bin", REPLAYS_RECORDED_OUTPUT)
    saw = pytester.path / "saw"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{pytester.path / 'bin'}{os.pathsep}{os.environ['PATH']}")
        patch.setenv("STAND_IN_SAW", str(saw))
        result = pytester.runpytest("--gpuperf", "--gpuperf-ncu", "-p", "no:cacheprovider", "-k", "latency")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "Nsight Compute, one call of the step (5 kernel launches; ncu replays each with locked clocks), "
            "top 5 by time:",
            "  at::multi_tensor_apply_kernel<...>: 0.017 ms: compute 0.1%, memory 0.3%, DRAM 0.2% of peak",
            "  nvjet_sm90_tst_64x32_64x16_4x2_h_bz_splitK_bias_TNT: 0.008 ms: compute 11.4%, memory 23.4%, DRAM 23.4%*",
            "  ncu's table: gpuperf-traces/test_two.py_test_latency-*.ncu.csv",
        ]
    )
    target, argv = saw.read_text().splitlines()
    assert target == "test_two.py::test_latency"
    child = argv.split(" -m pytest ")[1].split()
    assert child[0] == f"{pytester.path / 'test_two.py'}::test_latency"
    assert "--gpuperf" in child and child[child.index("--gpuperf-save-traces") + 1] == "none"
    assert "--gpuperf-ncu" not in child and "--gpuperf-update-baselines" not in child
