"""Faults a new user and a fault hunt hit in the first hour, one test (or more) each.

Each test names the item of the first-hour issue it pins; each failed before its fix.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest

from pytest_gpuperf.analysis.kineto import gunzip
from pytest_gpuperf.analysis.trace import TraceFormatError
from pytest_gpuperf.cli import main as gpuperf_main
from pytest_gpuperf.judging.baseline import BaselineError, BaselineStore, Machine, read, write_atomic
from pytest_gpuperf.judging.testids import checked_machine_key, file_stem
from pytest_gpuperf.judging.text import printable
from pytest_gpuperf.measuring.protocol import MeasurementError, measure, warm_up
from tests.conftest import REPO_ON_PATH
from tests.helpers import DEFAULTS, ENTRY, FAST, H100
from tests.replay import ReplayBackend


def replay(pytester: pytest.Pytester, samples: str = "[1.0]") -> None:
    pytester.makeconftest(
        f"""
        {REPO_ON_PATH}
        from tests.replay import ReplayBackend

        def pytest_gpuperf_make_backend(config, settings):
            return ReplayBackend({samples})
        """
    )


# 1. kv_pool without device= on a CPU-only torch ------------------------------------------------------


def test_1_kv_pool_defaults_to_the_device_the_machine_has() -> None:
    import torch

    from pytest_gpuperf.cuda.kv_pool import KVPool

    pool = KVPool(num_blocks=4, num_layers=1, num_kv_heads=1, block_size=2, head_dim=4)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pool.stats().device.startswith(expected)
    assert f"on {pool.stats().device}" in repr(pool)


# 2. rounds sized from the warmup's mean, slow first call included --------------------------------------


def test_2_a_slow_first_call_does_not_size_the_rounds() -> None:
    from pytest_gpuperf.measuring.hostclock import HostClockBackend

    calls = []

    def step() -> None:
        calls.append(1)
        time.sleep(0.3 if len(calls) == 1 else 0.001)

    _, wall_ms_per_call = warm_up(HostClockBackend(), step, replace(DEFAULTS, warmup_ms=20.0))
    # Rounds are sized from this: the steady ~1 ms call (a few ms on a busy machine), not the
    # 300 ms first call averaged in (about 30 ms a call before the fix: rounds of 2 calls).
    assert wall_ms_per_call < 15.0


def test_2_warmup_ends_after_two_chunks_at_least() -> None:
    calls, _ = warm_up(ReplayBackend([1.0]), lambda: None, replace(DEFAULTS, warmup_ms=0.0))
    assert calls >= 2 * DEFAULTS.warmup_calls


# 3. baseline files keep their mode and are written through links -------------------------------------


def test_3_a_rewritten_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path: Path) -> None:
    kept = tmp_path / "kept.yaml"
    kept.write_text("old")
    kept.chmod(0o644)
    write_atomic(kept, "new")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o644 and kept.read_text() == "new"
    old_umask = os.umask(0o027)
    try:
        write_atomic(tmp_path / "fresh.yaml", "x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "fresh.yaml").stat().st_mode) == 0o640


def test_3_a_symlinked_baseline_is_written_through(tmp_path: Path) -> None:
    target = tmp_path / "shared" / "real.yaml"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


# 4. a -k update against a file from another setup ------------------------------------------------------


def test_4_a_partial_update_never_drops_other_tests_of_a_file_from_another_setup(tmp_path: Path) -> None:
    old = BaselineStore(tmp_path, "h100", Machine("NVIDIA H100 80GB HBM3", "570.1", "12.8", "2.10.0"), tmp_path)
    old.stage("tests/test_m", "test_a", ENTRY)
    old.stage("tests/test_m", "test_b", ENTRY)
    old.flush({}, remove_stale=False, whole=True)
    before = old.path("tests/test_m").read_text()
    new = BaselineStore(tmp_path, "h100", H100, tmp_path)
    new.stage("tests/test_m", "test_a", ENTRY)
    (line,) = new.flush({}, remove_stale=False, whole=False)
    assert "not written: recorded on another setup" in line and "without -k" in line
    assert new.path("tests/test_m").read_text() == before


# 5. gpu_budget together with pytest-benchmark's fixture ------------------------------------------------


def test_5_a_budgeted_test_using_pytest_benchmark_runs_its_body_once(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_benchmark")
    replay(pytester)
    pytester.makepyfile(
        """
        import pytest
        BODIES = []

        @pytest.mark.gpu_budget(p50_ms=5)
        def test_bench(benchmark):
            BODIES.append(1)
            assert benchmark(lambda x: x + 1, 1) == 2
            assert len(BODIES) == 1
        """
    )
    result = pytester.runpytest("--gpuperf", *FAST, "--benchmark-disable-gc")
    result.assert_outcomes(passed=1)
    assert "FixtureAlreadyUsed" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*test_bench*1.0000*pass*"])


# 6. tests outside the rootdir -----------------------------------------------------------------------------


def test_6_two_files_outside_the_rootdir_get_their_own_baselines(pytester: pytest.Pytester) -> None:
    replay(pytester)
    project = pytester.mkdir("project")
    (project / "pytest.ini").write_text("[pytest]\n")
    for folder in ("a", "b"):
        (pytester.path / folder).mkdir()
        (pytester.path / folder / "test_o.py").write_text("def test_o(gpu_profiler):\n    gpu_profiler(int)\n")
    (project / "conftest.py").write_text((pytester.path / "conftest.py").read_text())
    result = pytester.runpytest(
        "--rootdir", str(project), "-c", str(project / "pytest.ini"), "--import-mode=importlib", "--gpuperf", *FAST,
        "--gpuperf-update-baselines", str(pytester.path / "a"), str(pytester.path / "b"),
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    files = sorted(p.relative_to(project / "baselines").as_posix() for p in (project / "baselines").rglob("*.yaml"))
    assert len(files) == 2 and all("_outside_rootdir/" in f for f in files)
    assert files[0].endswith("/a/test_o.yaml") and files[1].endswith("/b/test_o.yaml")


# 7. two measurements in one test in JUnit XML -------------------------------------------------------------


def test_7_junit_properties_of_two_measurements_have_their_own_names(pytester: pytest.Pytester) -> None:
    replay(pytester)
    pytester.makepyfile("def test_two(gpu_profiler):\n    gpu_profiler(int)\n    gpu_profiler(int)\n")
    xml = pytester.path / "junit.xml"
    pytester.runpytest("--gpuperf", *FAST, f"--junitxml={xml}").assert_outcomes(passed=1)
    names = [p.get("name") for p in ET.parse(xml).iter("property")]
    assert len(names) == len(set(names))
    assert "gpuperf_p50_ms" in names and "gpuperf#2_p50_ms" in names


# 8. typed ini keys ---------------------------------------------------------------------------------------


@pytest.mark.skipif(pytest.version_tuple < (9,), reason="the native [tool.pytest] table is pytest 9's")
def test_8_pytest_9s_native_table_takes_booleans_and_numbers(pytester: pytest.Pytester) -> None:
    replay(pytester)
    pytester.makepyprojecttoml("[tool.pytest]\ngpuperf = true\ngpuperf_rounds = 4\ngpuperf_round_ms = 1.5\n")
    pytester.makepyfile("def test_a(gpu_profiler):\n    gpu_profiler(int)\n")
    report = pytester.path / "r.json"
    result = pytester.runpytest("--gpuperf-json", str(report), "--gpuperf-warmup-ms", "1")
    result.assert_outcomes(passed=1)
    settings = json.loads(report.read_text())["settings"]
    assert settings["gpuperf"] is True and settings["gpuperf_rounds"] == 4 and settings["gpuperf_round_ms"] == 1.5


def test_8_a_bad_ini_number_is_a_usage_error_naming_the_key(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ngpuperf_rounds = many\n")
    pytester.makepyfile("def test_a(): pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini key gpuperf_rounds*"])
    assert "invalid literal" not in result.stderr.str()


# 9. options that do nothing without --gpuperf ---------------------------------------------------------------


def test_9_baseline_and_json_options_without_gpuperf_say_they_do_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass\n")
    result = pytester.runpytest("--gpuperf-update-baselines", "--gpuperf-json", "r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*--gpuperf-update-baselines, --gpuperf-json without --gpuperf: nothing is measured*"])


# 10. the CPU header, path bases, CPU baselines keyed by model and threads -------------------------------------


def test_10_on_the_host_clock_the_header_promises_no_traces(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(gpu_profiler):\n    gpu_profiler(int)\n")
    result = pytester.runpytest("--gpuperf", "--gpuperf-device", "cpu", *FAST, "--gpuperf-save-traces", "all")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "no profiled pass (the host clock has no GPU to profile)" in out and "traces kept" not in out


def test_10_command_line_paths_are_relative_to_the_current_folder(pytester: pytest.Pytester) -> None:
    replay(pytester)
    pytester.makeini("[pytest]\ngpuperf_baselines_dir = recorded\n")
    pytester.makepyfile("def test_a(gpu_profiler):\n    gpu_profiler(int)\n")
    sub = pytester.mkdir("sub")
    os.chdir(sub)
    result = pytester.runpytest(
        str(pytester.path), "--gpuperf", *FAST, "--gpuperf-update-baselines", "--gpuperf-json", "r.json"
    )
    result.assert_outcomes(passed=1)
    assert (sub / "r.json").exists()  # the command line's path: from the current folder
    assert list((pytester.path / "recorded").rglob("*.yaml"))  # the ini file's path: from its folder


def test_10_cpu_baselines_are_kept_apart_by_cpu_model_and_threads() -> None:
    from pytest_gpuperf.judging.baseline import machine_key
    from pytest_gpuperf.measuring.hostclock import HostClockBackend

    one, eight = machine_key(HostClockBackend(1).env()), machine_key(HostClockBackend(8).env())
    assert one != eight and one.startswith("cpu-") and one.endswith("-1-torch-thread")


# 11. what a user imports and reads ----------------------------------------------------------------------------


def test_11_error_classes_import_from_the_package_and_gpuperf_has_a_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import pytest_gpuperf

    for name in ("KVPoolExhausted", "KVPoolError", "GraphCaptureError", "BaselineError", "TraceFormatError"):
        assert issubclass(getattr(pytest_gpuperf, name), Exception)
    with pytest.raises(SystemExit) as exit_info:
        gpuperf_main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"gpuperf {pytest_gpuperf.__version__}"


def test_11_counts_read_as_english() -> None:
    from pytest_gpuperf.judging.budget import judge

    assert "(short by 20.0%)" in judge("items_per_s_min", 10.0, 8.0).describe()
    from pytest_gpuperf.judging.text import count

    assert (count(1, "entry", "entries"), count(2, "call")) == ("1 entry", "2 calls")


# 12. declared dependencies ----------------------------------------------------------------------------------


def test_12_neither_numpy_nor_pytest_benchmark_is_forced_on_users() -> None:
    required = [r for r in metadata.requires("pytest-gpuperf") or [] if "extra ==" not in r]
    names = {r.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip().lower() for r in required}
    assert "numpy" not in names and "pytest-benchmark" not in names


# 13. two processes updating one baseline file ---------------------------------------------------------------


def test_13_updates_that_read_the_same_file_keep_each_others_entries(tmp_path: Path) -> None:
    first, second = (BaselineStore(tmp_path, "h100", H100, tmp_path) for _ in range(2))
    for store in (first, second):
        store.lookup("tests/test_m", "test_a")  # both read the file before either writes
    first.stage("tests/test_m", "test_a", ENTRY)
    second.stage("tests/test_m", "test_b", ENTRY)
    first.flush({}, remove_stale=False, whole=True)
    second.flush({}, remove_stale=False, whole=True)
    found = read(first.path("tests/test_m"))
    assert found is not None and sorted(found.entries) == ["test_a", "test_b"]


def test_13_concurrent_processes_lose_no_entries(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        {REPO_ON_PATH}
        from pytest_gpuperf.judging.baseline import BaselineStore
        from tests.helpers import ENTRY, H100
        store = BaselineStore(Path(sys.argv[1]), "h100", H100, Path(sys.argv[1]))
        store.lookup("tests/test_m", "x")
        for i in range(5):
            store.stage("tests/test_m", f"test_{{sys.argv[2]}}_{{i}}", ENTRY)
        time.sleep(0.2)  # every process has read the file before any writes
        store.flush({{}}, remove_stale=False, whole=True)
        """
    )
    workers = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(n)]) for n in range(4)]
    assert [w.wait(timeout=60) for w in workers] == [0, 0, 0, 0]
    found = read(tmp_path / "h100" / "tests" / "test_m.yaml")
    assert found is not None and len(found.entries) == 20


# 14. non-finite inputs never reach a baseline ---------------------------------------------------------------


@pytest.mark.parametrize("items", [float("nan"), float("inf"), 10**400, 0, True])
def test_14_items_must_be_a_finite_positive_number(items: object) -> None:
    from pytest_gpuperf.fixtures import check_items

    with pytest.raises(ValueError, match="items must be a finite number above 0"):
        check_items(items)


def test_14_a_zero_timing_is_not_recorded_and_the_file_stays_readable(pytester: pytest.Pytester) -> None:
    replay(pytester, "[0.0]")
    pytester.makepyfile("def test_zero(gpu_profiler):\n    gpu_profiler(int)\n")
    result = pytester.runpytest("--gpuperf", *FAST, "--gpuperf-update-baselines")
    result.stdout.fnmatch_lines(["*test_zero: not recorded: p50_ms*"])
    for path in pytester.path.rglob("*.yaml"):
        read(path)  # whatever was written reads back


def test_14_a_backend_timing_that_is_not_a_time_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(MeasurementError, match="nan"):
        measure(ReplayBackend([float("nan")]), int, DEFAULTS, test_id="t", budget={}, items=None, trace_path=tmp_path)


# 15. malformed YAML --------------------------------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)
HEAD = "schema: 1\nmachine: {gpu: x}\ntests:\n  test_a:\n    samples: 3\n"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (HEAD + "    p50_ms: " + "9" * 400 + "\n", "p50_ms: expected a finite number"),
        (HEAD + "    p50_ms: " + "9" * 5000 + "\n", "not valid baseline YAML"),
        ("schema: 1\x00\n", "not valid baseline YAML"),
        ("schema: 1\nmachine: {gpu: x}\ntests: " + "[" * 500 + "]" * 500 + "\n", "nested more than"),
        (BOMB, "anchors and aliases|nested more than"),
    ],
    ids=["400 digits", "5000 digits", "NUL", "deep", "alias bomb"],
)
def test_15_malformed_yaml_is_a_named_error_quickly(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(BaselineError, match=words) as info:
        read(path)
    assert time.perf_counter() - started < 2.0
    assert str(path) in str(info.value) and len(str(info.value)) < 600


def test_15_an_oversized_file_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_gpuperf.judging.baseline as baseline

    monkeypatch.setattr(baseline, "MAX_FILE_BYTES", 100)
    path = tmp_path / "big.yaml"
    path.write_text("#" * 200)
    with pytest.raises(BaselineError, match="larger than a baseline file can be"):
        read(path)


# 16. the machine-key hook's answer -------------------------------------------------------------------------


@pytest.mark.parametrize("key", [".", "..", "../../x", "/abs", "a/b", "nul\x00", 7, ""])
def test_16_a_machine_key_must_be_one_safe_folder_name(key: object) -> None:
    with pytest.raises(ValueError, match="one folder name"):
        checked_machine_key(key)


def test_16_the_hook_returning_dot_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        f"""
        {REPO_ON_PATH}
        from tests.replay import ReplayBackend

        def pytest_gpuperf_make_backend(config, settings):
            return ReplayBackend([1.0])

        def pytest_gpuperf_machine_key(config, env):
            return "."
        """
    )
    pytester.makepyfile("def test_a(gpu_profiler):\n    gpu_profiler(int)\n")
    result = pytester.runpytest("--gpuperf", *FAST)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest_gpuperf_machine_key: returned '.'*"])


# 17. trace file names ------------------------------------------------------------------------------------


def test_17_trace_file_names_are_short_and_distinct() -> None:
    ids = ["t.py::a/b", "t.py::a_b", "t.py::a b", "t.py::a:b", "t.py::" + "x" * 245]
    stems = [file_stem(i) for i in ids]
    assert len(set(stems)) == len(ids)
    assert all(len(s) + len(".pt.trace.json.gz") < 255 for s in stems)


# 18. huge marker numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["gpu_budget(p99_ms=10**400)", "gpu_baseline(tolerance_pct=10**400)"])
def test_18_a_number_beyond_float_range_is_a_usage_error(pytester: pytest.Pytester, marker: str) -> None:
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.{marker}\ndef test_a(): pass\n")
    result = pytester.runpytest("--gpuperf")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(["*expected a finite number*"])


# 19. an xdist worker that dies ---------------------------------------------------------------------------


def test_19_a_crashed_worker_s_measurements_are_reported_lost(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    replay(pytester)
    pytester.makepyfile(
        """
        import os

        def test_1_measured(gpu_profiler):
            gpu_profiler(int)

        def test_2_dies():
            os._exit(3)
        """
    )
    result = pytester.runpytest("--gpuperf", *FAST, "-n", "1", "-p", "no:randomly")
    result.stdout.fnmatch_lines(["*gpuperf: worker gw0 ended without sending its results*test_1_measured*"])


# 20. gpuperf analyze on bad input -------------------------------------------------------------------------


def _kernel(**overrides: object) -> dict[str, object]:
    event = {"ph": "X", "cat": "kernel", "name": "k", "ts": 0, "dur": 1, "pid": 0, "tid": 7, "args": {"device": 0}}
    return {**event, **overrides}


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("utf8.json", b'{"traceEvents":[{"ph":"X","cat":"kernel","name":"\xff","ts":0,"dur":1}]}'),
        ("far.json", json.dumps({"traceEvents": [_kernel(ts=1e308), _kernel(ts=-1e308)]}).encode()),
    ],
)
def test_20_bad_traces_exit_2_with_the_named_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes
) -> None:
    (tmp_path / name).write_bytes(data)
    assert gpuperf_main(["analyze", str(tmp_path / name)]) == 2
    assert capsys.readouterr().err.startswith(f"gpuperf: error: {tmp_path / name}: ")


def test_20_decompression_is_bounded_and_reads_every_member() -> None:
    with pytest.raises(TraceFormatError, match="decompresses to more than"):
        gunzip(gzip.compress(b" " * 10_000_000), "bomb.gz", limit=1_000_000)
    assert gunzip(gzip.compress(b"ab") + gzip.compress(b"cd"), "two.gz") == b"abcd"


def test_20_sqlite_names_with_hash_null_and_blob_strings(tmp_path: Path) -> None:
    import sqlite3

    from pytest_gpuperf import analyze, load

    path = tmp_path / "t#2.sqlite"
    (tmp_path / "t").write_text("a decoy the unquoted URI would open")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE StringIds (id INTEGER, value)")
        conn.execute("INSERT INTO StringIds VALUES (1, NULL), (2, x'ff00')")
        conn.execute(
            "CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start, end, deviceId, streamId, correlationId, shortName)"
        )
        conn.execute("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (0, 10, 0, 7, 1, 2)")
    conn.close()
    device = analyze(load(path)).primary
    assert device is not None and device.kernels == 1


# 21. a step that never returns ---------------------------------------------------------------------------


def test_21_a_hanging_step_fails_its_test_after_the_timeout(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time

        def test_hangs(gpu_profiler):
            gpu_profiler(time.sleep, 3600)

        def test_after():
            pass
        """
    )
    started = time.monotonic()
    result = pytester.runpytest("--gpuperf", "--gpuperf-device", "cpu", *FAST, "--gpuperf-timeout", "0.5")
    assert time.monotonic() - started < 60
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*MeasurementTimeout*past the 0.5 s limit (--gpuperf-timeout)*"])


# 22. escape codes, files left behind ------------------------------------------------------------------------


def test_22_control_characters_are_shown_escaped() -> None:
    assert printable("kernel\x1b[2J\x07name\tok\n") == "kernel\\x1b[2J\\x07name\tok\n"


def test_22_a_trace_with_an_escape_in_a_kernel_name_prints_it_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"traceEvents": [_kernel(name="evil\x1b[31m")]}))
    assert gpuperf_main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[31m" in out


def test_22_a_run_leaves_no_temporary_files(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = pytester.mkdir("tmp")
    monkeypatch.setenv("TMPDIR", str(scratch))
    replay(pytester)
    pytester.makepyfile("def test_a(gpu_profiler):\n    gpu_profiler(int)\n")
    result = pytester.runpytest_subprocess("--gpuperf", *FAST, "--gpuperf-update-baselines")
    result.assert_outcomes(passed=1)
    assert [p for p in scratch.iterdir() if "gpuperf" in p.name] == []
    assert not [p for p in (pytester.path / "baselines").rglob("*") if p.name.startswith(".")]
