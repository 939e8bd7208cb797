"""The plugin's behaviour, through pytester runs with a replay backend or the host clock."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_gpuperf.judging.testids import file_stem
from tests.helpers import FAST, replay_conftest


def test_without_gpuperf_a_budgeted_test_runs_once_as_a_plain_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys
        import pytest
        CALLS = []

        @pytest.mark.gpu_budget(p99_ms=0.000001)
        def test_body(gpu_profiler):
            assert gpu_profiler(lambda x: CALLS.append(x) or x * 2, 21) == 42
            assert CALLS == [21]
            assert "torch" not in sys.modules

        @pytest.mark.gpu_budget(p50_ms=0.000001)
        def test_whole_body():
            CALLS.append("body")
            assert CALLS.count("body") == 1
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    assert "= gpuperf =" not in result.stdout.str()  # no report section: nothing measured


def test_every_malformed_marker_is_reported_at_once_with_a_suggestion(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_m="""
        import pytest

        @pytest.mark.gpu_budget(p99_ms=40, p99_msx=30)
        def test_typo():
            pass

        @pytest.mark.gpu_budget(40)
        def test_positional():
            pass

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("--gpuperf")  # measuring: an error before anything runs
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*malformed gpuperf markers:",
            "*test_m.py::test_typo: gpu_budget unknown key 'p99_msx'; did you mean 'p99_ms'? keys: *",
            "*test_m.py::test_positional: gpu_budget takes keyword arguments only*",
        ]
    )
    # A plain run still runs the suite as functional tests, and says what is wrong.
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["*malformed gpuperf markers (an error under --gpuperf):*", "*test_m.py::test_typo: gpu_budget unknown key*"]
    )


def test_gpuperf_without_torch_is_one_clear_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("import sys\nsys.modules['torch'] = None  # as if torch were not installed\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("--gpuperf")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --gpuperf needs PyTorch, which is not installed: pip install torch"])


def test_command_line_beats_ini_beats_default(pytester: pytest.Pytester) -> None:
    replay_conftest(pytester, "[1.0]")
    pytester.makepyfile("import pytest\n\n@pytest.mark.gpu_budget(p50_ms=5)\ndef test_a(): pass\n")
    pytester.makeini("[pytest]\ngpuperf = true\ngpuperf_rounds = 4\ngpuperf_profile_steps = 2\n")
    report = pytester.path / "r.json"
    result = pytester.runpytest(
        "--gpuperf-rounds", "3", "--gpuperf-json", str(report), "--gpuperf-warmup-ms", "1", "--gpuperf-round-ms", "1"
    )
    result.assert_outcomes(passed=1)
    settings = json.loads(report.read_text())["settings"]
    assert settings["gpuperf"] is True  # ini turned it on
    assert settings["gpuperf_rounds"] == 3  # command line beats ini
    assert settings["gpuperf_profile_steps"] == 2  # ini beats default
    assert settings["gpuperf_max_rounds"] == 30  # default
    assert json.loads(report.read_text())["tests"][0]["rounds"] == 3


def test_a_bad_option_value_names_its_source(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ngpuperf_save_traces = sometimes\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini key gpuperf_save_traces: must be one of none, failed, all, not 'sometimes'*"])
    result = pytester.runpytest("--gpuperf-rounds", "0")
    result.stderr.fnmatch_lines(["*--gpuperf-rounds: must be 1 or more, not 0*"])


def test_a_budget_is_met_and_broken_with_the_bottleneck_and_the_fix(pytester: pytest.Pytester) -> None:
    replay_conftest(pytester, "[2.0, 2.1, 1.9, 2.05, 1.95]")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu_budget(p50_ms=3.0, p99_ms=2.5)
        def test_meets(gpu_profiler):
            def step():
                with gpu_profiler.region("attention"):  # an NVTX range inside the step
                    pass

            gpu_profiler(step)

        @pytest.mark.gpu_budget(p99_ms=1.0, gpu_active_pct_min=50, peak_mem_mb=4096)
        def test_breaks(gpu_profiler):
            gpu_profiler(lambda: None)
        """
    )
    result = pytester.runpytest("--gpuperf", *FAST, "--junitxml", "junit.xml", "--gpuperf-trace-dir", "traces")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "gpu_budget failed: test_a_budget_is_met_and_broken_with_the_bottleneck_and_the_fix.py::test_breaks" in out
    assert "p99_ms = 2.1 ms [95% CI" in out and "> budget 1 ms (over by 110.0%)" in out
    assert "gpu_active_pct = 4.689 % < budget 50 % (short by 90.6%)" in out
    assert "peak_mem_mb" not in out.split("bottleneck:")[0].split("gpu_budget failed")[1]  # met: not listed
    assert "bottleneck: overhead-bound (trace)" in out  # 2 us of GPU work per launch
    assert "try first: capture the step as a CUDA graph" in out
    assert "trace: traces/" in out
    saved = list((pytester.path / "traces").iterdir())
    test_id = "test_a_budget_is_met_and_broken_with_the_bottleneck_and_the_fix.py::test_breaks"
    assert [p.name for p in saved] == [f"{file_stem(test_id)}.pt.trace.json.gz"]  # --gpuperf-save-traces: failed
    # The table: one row per measured test.
    result.stdout.re_match_lines(
        [
            r".*::test_meets\s+2\.0000\s+2\.1000\s+4\.7\s+16\.57\s+512\.0\s+overhead-bound\s+new\s+pass",
            r".*::test_breaks .* FAIL",
            r"2 measured, 1 over budget",
        ]
    )
    # JUnit XML carries the measured metrics.
    properties = {p.get("name"): p.get("value") for p in ET.parse(pytester.path / "junit.xml").iter("property")}
    assert properties["gpuperf_p50_ms"] == "2.0"
    assert properties["gpuperf_bottleneck"] == "overhead-bound"
    assert properties["gpuperf_gpu_active_pct"] == "4.6892"


def test_the_test_bodys_own_exception_is_reported_as_itself(pytester: pytest.Pytester) -> None:
    replay_conftest(pytester, "[5.0]")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu_budget(p99_ms=1.0)
        def test_raises(gpu_profiler):
            gpu_profiler(lambda: None)
            raise KeyError("the test's own problem")
        """
    )
    result = pytester.runpytest("--gpuperf", *FAST)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(['*KeyError: "the test\'s own problem"*'])
    assert "gpu_budget failed" not in result.stdout.str()


def test_a_budget_too_close_to_call_gets_more_rounds_then_a_marginal_verdict(pytester: pytest.Pytester) -> None:
    replay_conftest(pytester, "[0.9, 1.1]")  # the median straddles 1.0 whatever the rounds
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu_budget(p50_ms=1.0)
        def test_close(gpu_profiler):
            gpu_profiler(lambda: None)

        @pytest.mark.gpu_budget(p50_ms=5.0)
        def test_far(gpu_profiler):
            gpu_profiler(lambda: None)
        """
    )
    report = pytester.path / "r.json"
    result = pytester.runpytest("--gpuperf", *FAST, "--gpuperf-json", str(report))
    tests = {t["test"].split("::")[1]: t for t in json.loads(report.read_text())["tests"]}
    assert tests["test_close"]["rounds"] == 6  # extended to --gpuperf-max-rounds
    assert tests["test_far"]["rounds"] == 3  # decided at once
    assert tests["test_close"]["budgets"][0]["marginal"] is True
    assert tests["test_close"]["verdict"] == "pass (marginal)"  # the median 1.0 is not over 1.0
    result.assert_outcomes(passed=2)


def test_a_budgeted_test_without_the_fixture_has_its_whole_body_measured(pytester: pytest.Pytester) -> None:
    replay_conftest(pytester, "[1.0]")
    pytester.makepyfile(
        """
        import pytest
        CALLS = []

        @pytest.fixture
        def model():
            return "m"

        @pytest.mark.gpu_budget(p50_ms=5)
        def test_body(model):
            CALLS.append(model)

        def test_after():
            assert len(CALLS) > 10 and set(CALLS) == {"m"}
        """
    )
    result = pytester.runpytest("--gpuperf", *FAST, "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_host_clock_reports_gpu_budgets_unavailable_not_failed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu_budget(p50_ms=1000, gpu_active_pct_min=90, peak_mem_mb=1)
        def test_cpu(gpu_profiler):
            gpu_profiler(sum, range(10))
        """
    )
    report = pytester.path / "r.json"
    result = pytester.runpytest("--gpuperf", "--gpuperf-device", "cpu", *FAST, "--gpuperf-json", str(report))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*pass (partly unavailable)*"])
    budgets = {b["key"]: b for b in json.loads(report.read_text())["tests"][0]["budgets"]}
    assert budgets["gpu_active_pct_min"]["status"] == "unavailable"
    assert "no GPU" in budgets["gpu_active_pct_min"]["reason"]
    assert budgets["peak_mem_mb"]["status"] == "unavailable"
    assert budgets["p50_ms"]["status"] == "pass"


@pytest.mark.no_cuda
def test_requiring_a_gpu_without_one_is_an_error_said_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass\ndef test_b(): pass\n")
    # In a subprocess: these import torch, which cannot be loaded twice in one process.
    result = pytester.runpytest_subprocess("--gpuperf", "--gpuperf-require-gpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.str().count("sees no CUDA device") == 1
    result = pytester.runpytest_subprocess("--gpuperf", "--gpuperf-device", "cuda")
    result.stderr.fnmatch_lines(["ERROR: --gpuperf-device cuda: torch * sees no CUDA device"])


@pytest.mark.no_cuda
def test_auto_without_cuda_says_so_once_in_the_header(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(gpu_profiler): gpu_profiler(int)\ndef test_b(gpu_profiler): gpu_profiler(int)\n")
    result = pytester.runpytest_subprocess("--gpuperf", *FAST)
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert out.count("sees no CUDA device: timing with the host clock; GPU metrics are unavailable") == 1
    assert "gpuperf: host-clock on cpu" in out


@pytest.mark.parametrize(("save", "kept"), [("none", 0), ("failed", 1), ("all", 2)])
def test_traces_are_saved_as_asked(pytester: pytest.Pytester, save: str, kept: int) -> None:
    replay_conftest(pytester, "[2.0]", trace="gemm")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu_budget(p50_ms=1)
        def test_over(gpu_profiler):
            gpu_profiler(int)

        def test_measured(gpu_profiler):
            gpu_profiler(int)
        """
    )
    pytester.runpytest("--gpuperf", *FAST, "--gpuperf-save-traces", save, "--gpuperf-trace-dir", "t")
    folder = pytester.path / "t"
    saved = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert len(saved) == kept
    for name in saved:  # each is a real trace the analysis (and Perfetto) reads
        from pytest_gpuperf import analyze, load

        assert analyze(load(folder / name)).primary is not None


def test_items_give_throughput_and_its_budget(pytester: pytest.Pytester) -> None:
    replay_conftest(pytester, "[2.0]")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu_budget(items_per_s_min=10000)
        def test_tokens(gpu_profiler):
            gpu_profiler(int, items=16)

        @pytest.mark.gpu_budget(items_per_s_min=1)
        def test_no_items(gpu_profiler):
            gpu_profiler(int)
        """
    )
    report = pytester.path / "r.json"
    result = pytester.runpytest("--gpuperf", *FAST, "--gpuperf-json", str(report))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*items_per_s = 8000 items/s*< budget 1e+04 items/s (short by 20.0%)*"])
    tests = json.loads(report.read_text())["tests"]
    assert tests[0]["items_per_s"]["value"] == 8000.0
    assert tests[1]["budgets"][0]["status"] == "unavailable"


def test_the_json_report_holds_everything(pytester: pytest.Pytester, tmp_path: Path) -> None:
    replay_conftest(pytester, "[1.0, 1.2]", trace="decode_graph")
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.gpu_budget(p99_ms=2)\ndef test_a(gpu_profiler):\n    gpu_profiler(int)\n"
    )
    report = tmp_path / "deep" / "r.json"
    pytester.runpytest("--gpuperf", *FAST, "--gpuperf-json", str(report)).assert_outcomes(passed=1)
    test = json.loads(report.read_text())["tests"][0]
    assert test["env"]["device"] == "NVIDIA H100 80GB HBM3"
    assert test["trace"]["launches"]["graph"] == 2
    assert test["bottleneck"]["kind"] == "memory-bound"
    assert len(test["round_medians_ms"]) == 3
    assert test["p99_ms"]["value"] == pytest.approx(1.2)
    assert test["throttled"] is False


def test_a_host_sync_budget_fails_naming_the_operator_that_synchronized(pytester: pytest.Pytester) -> None:
    from tests.traces import cpu_op, kernel, runtime, step, trace

    events = []
    for n, start in enumerate((0.0, 100.0)):
        events += [step(start, 100, n), cpu_op(start, 30, "aten::mm"), kernel(start + 1, 20, "gemm")]
        events += [cpu_op(start + 40, 20, "aten::item"), runtime(start + 44, 10, "cudaStreamSynchronize")]
    path = pytester.path / "item.json"
    path.write_text(json.dumps(trace(*events)))
    replay_conftest(pytester, "[1.0]", trace=path)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu_budget(host_syncs_per_step_max=0, cpu_ops_per_step_max=2)
        def test_step(gpu_profiler):
            gpu_profiler(lambda: None)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gpuperf", *FAST)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  host_syncs_per_step = 1 > budget 0 (over by 1)",
            "    synchronizing calls per step, by the operator that made them: aten::item 1",
        ]
    )
    assert "cpu_ops_per_step = 2 <= budget 2" not in result.stdout.str()  # a passing budget is not listed
