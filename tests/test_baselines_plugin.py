"""Baselines through pytest runs: record, compare, fail only on a confirmed regression,
strict mode, other setups, unreadable files, stale entries and pytest-xdist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pytest_gpuperf import analyze, load
from tests.conftest import REPO_ON_PATH
from tests.helpers import FAST

BASELINE = Path("baselines/nvidia-h100-80gb-hbm3/test_m.yaml")
TRACES = Path(__file__).parent / "data" / "traces"


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """Two measured tests timed by a replay backend; REPLAY_SCALE slows them, REPLAY_TORCH changes
    the setup, REPLAY_TRACE gives their profiled pass a recorded trace."""
    for name in ("REPLAY_SCALE", "REPLAY_TORCH", "REPLAY_TRACE"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(
        """
        import os
        from pathlib import Path
        {REPO_ON_PATH}
        from tests.replay import ReplayBackend

        CALLS = []

        def pytest_gpuperf_make_backend(config, settings):
            scale = float(os.environ.get("REPLAY_SCALE", "1"))
            trace = os.environ.get("REPLAY_TRACE")
            backend = ReplayBackend(
                [1.0 * scale, 1.001 * scale, 0.999 * scale],
                trace=Path(trace) if trace else None,
                torch=os.environ.get("REPLAY_TORCH", "2.11.0+cu130"),
            )
            CALLS.append(backend)
            return backend
        """.replace("{REPO_ON_PATH}", REPO_ON_PATH)
    )
    pytester.makepyfile(
        test_m="""
        import pytest

        def test_fixture(gpu_profiler):
            gpu_profiler(lambda: None)

        @pytest.mark.gpu_budget(p50_ms=100)
        def test_marker():
            pass
        """
    )
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "--gpuperf", *FAST, *args)


def test_record_then_compare_the_same_steps(suite: pytest.Pytester) -> None:
    result = run(suite)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*2 measured, 0 over budget; against baselines: 0 regressed, 2 new (record with*"])
    assert not (suite.path / BASELINE).exists()  # recording needs the update flag

    result = run(suite, "--gpuperf-update-baselines")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"baselines: {suite.path / BASELINE}: written (2 recorded)"])
    data = yaml.safe_load((suite.path / BASELINE).read_text())
    assert data["schema"] == 1
    assert data["machine"] == {
        "gpu": "NVIDIA H100 80GB HBM3",
        "driver": "580.159.04",
        "cuda": "13.0",
        "torch": "2.11.0+cu130",
    }
    assert sorted(data["tests"]) == ["test_fixture", "test_marker"]
    entry = data["tests"]["test_fixture"]
    assert entry["p50_ms"] == 1.0 and len(entry["round_medians_ms"]) == 3 and entry["round_clock_mhz"][0] == 1980

    text = (suite.path / BASELINE).read_text()
    result = run(suite, "--gpuperf-update-baselines")  # unchanged: no line changes, nothing written
    result.stdout.fnmatch_lines(["*against baselines: 0 regressed, 2 same*"])
    assert not [line for line in result.outlines if line.startswith("baselines:")]  # nothing written
    assert (suite.path / BASELINE).read_text() == text

    result = run(suite)
    result.assert_outcomes(passed=2)
    # The gates that judged it: latency, host work (Python lines), counts; this trace has no GPU time.
    result.stdout.re_match_lines([r"test_m.py::test_fixture .* \+0\.0% same \(latency, host, counts\)\s+measured"])


def test_a_regression_is_measured_again_then_fails_with_what_to_do(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(suite, "--gpuperf-update-baselines").assert_outcomes(passed=2)
    monkeypatch.setenv("REPLAY_SCALE", "1.2")
    result = run(suite)
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "gpuperf failed: test_m.py::test_fixture" in out
    assert f"  regressed against its baseline {BASELINE.as_posix()} (tolerance 5%):" in out
    assert "    p50_ms 1 -> 1.2 (+20.0%): regressed" in out
    assert "first measurement: p50_ms 1 -> 1.2 (+20.0%" in out
    assert 'if the change is intended: pytest --gpuperf --gpuperf-update-baselines "test_m.py::test_fixture"' in out
    result.stdout.re_match_lines([r"test_m.py::test_marker .* \+20\.0% regressed \(latency, host, counts\)\s+FAIL"])
    # Recording the change makes it the baseline.
    run(suite, "--gpuperf-update-baselines").assert_outcomes(passed=2)
    run(suite).assert_outcomes(passed=2)


def test_a_transient_slowdown_is_not_a_failure(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    run(suite, "--gpuperf-update-baselines")
    # The first measurement of test_fixture is slow; the second, taken to confirm it, is not.
    suite.makeconftest(
        """
        {REPO_ON_PATH}
        from tests.replay import ReplayBackend

        class Once(ReplayBackend):
            def begin_rounds(self):
                self.rounds = getattr(self, "rounds", 0) + 1

            def call_times_ms(self, step, calls):
                slow = 1.3 if getattr(self, "rounds", 0) == 1 else 1.0
                return [t * slow for t in super().call_times_ms(step, calls)]

        def pytest_gpuperf_make_backend(config, settings):
            return Once([1.0, 1.001, 0.999])
        """.replace("{REPO_ON_PATH}", REPO_ON_PATH)
    )
    result = run(suite, "--gpuperf-json", "report.json")
    result.assert_outcomes(passed=2)
    report = json.loads((suite.path / "report.json").read_text())
    first = next(t for t in report["tests"] if t["test"].endswith("test_fixture"))
    assert first["baseline"]["status"] == "same"
    assert first["baseline"]["first_attempt"].startswith("p50_ms 1 -> 1.3 (+30.0%")


def test_kernels_that_appear_in_a_step_that_had_none_fail_it_and_are_named_briefly(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 512 MiB device copy (no kernels, one memcpy), then the eager decode step's trace:
    # kernels per step grow from zero, which has no percentage and no finite ratio.
    monkeypatch.setenv("REPLAY_TRACE", str(TRACES / "copy.json.gz"))
    run(suite, "--gpuperf-update-baselines").assert_outcomes(passed=2)
    monkeypatch.setenv("REPLAY_TRACE", str(TRACES / "decode_eager.json.gz"))
    result = run(suite, "--gpuperf-json", "report.json")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "    kernels_per_step 0 -> * (from none): regressed; compared exactly",
            "    kernels that appeared: *at::native::elementwise_kernel<...> (x*), *, and * more (full names in *",
        ]
    )
    assert "(int, at::native" not in result.stdout.str()  # no parameter lists in the failure text
    report = json.loads((suite.path / "report.json").read_text())  # strict JSON: no Infinity
    change = next(c for c in report["tests"][0]["baseline"]["changes"] if c["metric"] == "kernels_per_step")
    assert change["baseline"] == 0 and change["ratio"] is None
    assert any("(int, at::native" in name for name in report["tests"][0]["baseline"]["kernels_added"])


def test_the_tolerance_can_be_set_per_test_and_for_the_run(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(suite, "--gpuperf-update-baselines")
    monkeypatch.setenv("REPLAY_SCALE", "1.03")
    run(suite).assert_outcomes(passed=2)  # 3% slower: within the default 5%
    run(suite, "--gpuperf-tolerance", "1").assert_outcomes(failed=2)
    test_file = suite.path / "test_m.py"
    test_file.write_text(
        "import pytest\n\n"
        "@pytest.mark.gpu_baseline(tolerance_pct=1)\n"
        "def test_fixture(gpu_profiler):\n    gpu_profiler(lambda: None)\n\n"
        "@pytest.mark.gpu_budget(p50_ms=100)\ndef test_marker():\n    pass\n"
    )
    run(suite).assert_outcomes(passed=1, failed=1)
    test_file.write_text("import pytest\n\n@pytest.mark.gpu_baseline(5)\ndef test_fixture():\n    pass\n")
    result = run(suite)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_m.py::test_fixture: gpu_baseline takes one keyword argument, tolerance_pct="])


def test_a_new_test_passes_unless_baselines_are_strict(suite: pytest.Pytester) -> None:
    run(suite).assert_outcomes(passed=2)
    result = run(suite, "--gpuperf-strict-baselines")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        ["*no baseline to compare with (--gpuperf-strict-baselines): no baseline in *test_m.yaml"]
    )


def test_a_baseline_from_another_setup_is_not_compared_and_says_why(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(suite, "--gpuperf-update-baselines")
    monkeypatch.setenv("REPLAY_TORCH", "2.12.0+cu130")
    monkeypatch.setenv("REPLAY_SCALE", "3")
    result = run(suite)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["not compared (2 tests): recorded on another setup: torch 2.11.0+cu130 in the baseline, 2.12.0+cu130 here"]
    )


def test_an_unreadable_baseline_fails_its_tests_and_is_never_overwritten(suite: pytest.Pytester) -> None:
    path = suite.path / BASELINE
    path.parent.mkdir(parents=True)
    broken = "schema: 1\nmachine: {gpu: NVIDIA H100 80GB HBM3}\ntests:\n  test_fixture: !!python/object:os.system\n"
    path.write_text(broken)
    result = run(suite, "--gpuperf-update-baselines")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [f"*baseline unreadable (the file is left as it is): {path}, line 4: not valid baseline YAML*"]
    )
    assert path.read_text() == broken


def test_entries_of_removed_tests_are_listed_and_removed_only_by_a_whole_update(suite: pytest.Pytester) -> None:
    run(suite, "--gpuperf-update-baselines")
    (suite.path / "test_m.py").write_text(
        "def test_fixture(gpu_profiler):\n    gpu_profiler(lambda: None)\n\ndef test_other():\n    pass\n"
    )
    result = run(suite)
    result.stdout.fnmatch_lines(["baselines: 1 entry for tests that no longer exist: test_m.py::test_marker; *"])
    result = run(suite, "--gpuperf-update-baselines", "-k", "fixture")
    result.stdout.fnmatch_lines(["baselines: 1 entry for tests that no longer exist*"])
    assert "test_marker" in (suite.path / BASELINE).read_text()
    result = run(suite, "--gpuperf-update-baselines")
    result.stdout.fnmatch_lines([f"baselines: {suite.path / BASELINE}: written (1 removed)"])
    assert "test_marker" not in (suite.path / BASELINE).read_text()


def test_inconclusive_comparisons_warn_and_pass(suite: pytest.Pytester) -> None:
    path = suite.path / BASELINE
    path.parent.mkdir(parents=True)
    path.write_text(
        "machine: {cuda: '13.0', driver: 580.159.04, gpu: NVIDIA H100 80GB HBM3, torch: 2.11.0+cu130}\n"
        "schema: 1\n"
        "tests:\n"
        "  test_fixture:\n"
        "    p50_ms: 0.95\n"
        "    p99_ms: 1.2\n"
        "    p99_ci_ms: [0.9, 1.3]\n"
        "    round_medians_ms: [0.8, 1.1, 0.85, 1.05, 0.9]\n"
        "    samples: 50\n"
    )
    result = run(suite, "-W", "default")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*GpuperfWarning: test_m.py::test_fixture: inconclusive against its baseline: p50_ms*"]
    )


def test_under_xdist_the_controller_merges_and_writes_once(suite: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = run(suite, "-p", "no:benchmark", "-n", "2", "--gpuperf-update-baselines")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"baselines: {suite.path / BASELINE}: written (2 recorded)"])
    result.stdout.fnmatch_lines(["*2 measured, 0 over budget; against baselines: 0 regressed, 2 new; 2 recorded"])
    data = yaml.safe_load((suite.path / BASELINE).read_text())
    assert sorted(data["tests"]) == ["test_fixture", "test_marker"]
    result = run(suite, "-p", "no:benchmark", "-n", "2")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*against baselines: 0 regressed, 2 same*"])


def test_a_regression_names_the_kernels_whose_time_moved_most(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLAY_TRACE", str(TRACES / "decode_graph.json.gz"))
    suite.runpytest_subprocess("--gpuperf", *FAST, "--gpuperf-update-baselines").assert_outcomes(passed=2)
    entry = yaml.safe_load((suite.path / BASELINE).read_text())["tests"]["test_fixture"]
    graph = analyze(load(TRACES / "decode_graph.json.gz")).primary
    assert graph is not None  # each kernel's time per step, kept to four digits
    assert sum(entry["kernel_us"].values()) == pytest.approx(graph.kernel_us / graph.steps, rel=1e-3)
    monkeypatch.setenv("REPLAY_TRACE", str(TRACES / "decode_eager.json.gz"))
    monkeypatch.setenv("REPLAY_SCALE", "1.5")
    result = suite.runpytest_subprocess("--gpuperf", *FAST)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "    kernels whose GPU time per step moved most (one profiled pass each; they explain gpu_ms_per_step):",
            "      *: * -> * us per step (*%), *% of the step",
        ]
    )
