"""Nothing a run measured is lost at its end: output paths checked before measuring, every
output still written when one fails, atomic files, and no baseline folder made by a plain run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pytest_gpuperf.judging import baseline
from pytest_gpuperf.judging.baseline import write_atomic
from pytest_gpuperf.report.outputs import folder_problem, output_problem
from tests.helpers import FAST, replay_conftest

MEASURED = """
import pytest

@pytest.mark.gpu_budget(p99_ms=50)
def test_step(gpu_profiler):
    gpu_profiler(lambda: None)
"""


def test_each_unwritable_output_is_named_before_anything_is_measured(pytester: pytest.Pytester) -> None:
    replay_conftest(pytester, "[1.0]")
    pytester.makepyfile(test_m=MEASURED)
    (pytester.path / "a_folder").mkdir()
    (pytester.path / "a_file").write_text("")
    result = pytester.runpytest(
        "--gpuperf", *FAST, "--gpuperf-json", "a_folder", "--gpuperf-html", "a_file/report.html",
        "--gpuperf-markdown", "ok.md", "--gpuperf-update-baselines", "--gpuperf-baselines-dir", "a_file/baselines",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*gpuperf cannot write its outputs:",
            "*--gpuperf-json */a_folder: is a folder; give a file's path",
            "*--gpuperf-html */a_file/report.html: */a_file is a file, not a folder",
            "*--gpuperf-baselines-dir */a_file/baselines: */a_file is a file, not a folder",
        ]
    )
    assert "test_step" not in result.stdout.str()  # nothing ran


def test_an_output_that_fails_at_the_end_loses_nothing_else(pytester: pytest.Pytester) -> None:
    """The JSON path becomes a folder while the tests run: the table, the summary and the other
    outputs are all there, one error names the file and why, and the run exits non-zero."""
    replay_conftest(pytester, "[1.0]")
    pytester.makepyfile(
        test_m=MEASURED
        + """
def test_something_takes_the_path():
    import os
    os.mkdir("report.json")
"""
    )
    result = pytester.runpytest("--gpuperf", *FAST, "--gpuperf-json", "report.json", "--gpuperf-html", "r.html")
    result.stdout.fnmatch_lines(
        [
            "*test_m.py::test_step *pass",
            "gpuperf: HTML report written to *r.html",
            "gpuperf: error: JSON report */report.json could not be written: Is a directory",
            "*2 passed*",
        ]
    )
    assert "JSON report written to" not in result.stdout.str()
    assert (pytester.path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_plain_run_makes_no_baseline_folder(pytester: pytest.Pytester) -> None:
    replay_conftest(pytester, "[1.0]")
    pytester.makepyfile(test_m=MEASURED)
    result = pytester.runpytest("--gpuperf", *FAST)
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "baselines").exists()


def test_baselines_that_cannot_be_written_fail_the_run_with_the_cause(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay_conftest(pytester, "[1.0]")
    pytester.makepyfile(test_m=MEASURED)

    def full_disk(path: Path, text: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(baseline, "write_atomic", full_disk)
    result = pytester.runpytest("--gpuperf", *FAST, "--gpuperf-update-baselines")
    result.stdout.fnmatch_lines(
        ["*test_m.py::test_step *", "gpuperf: error: */test_m.yaml: could not be written: No space left on device"]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_output_checks_name_the_problem(tmp_path: Path) -> None:
    assert output_problem(tmp_path / "new" / "deeper" / "r.json", "--x") is None  # folders are made
    assert output_problem(tmp_path, "--x") == f"--x {tmp_path}: is a folder; give a file's path"
    assert folder_problem(tmp_path / "b", "--y") is None


def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CI job cancelled while a baseline is written: the old file stays, no .tmp beside it."""
    target = tmp_path / "m.yaml"
    target.write_text("old\n")
    real_fsync = os.fsync

    def cancelled(fd: int) -> None:
        real_fsync(fd)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(os, "fsync", cancelled)
    with pytest.raises(SystemExit):
        write_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.yaml"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back


def test_the_markdown_summary_keeps_what_the_file_held(tmp_path: Path) -> None:
    from pytest_gpuperf.report.pages import write_markdown

    summary = tmp_path / "step_summary.md"
    summary.write_text("an earlier step's part\n")
    write_markdown(summary, [], {"gpu": "g"})
    assert summary.read_text().startswith("an earlier step's part\n### gpuperf")


HOSTILE_ID = "test_m.py::test_step[a`<img src=x onerror=alert(5)>`b]"


def test_ids_and_kernel_names_cannot_put_markup_into_a_step_summary() -> None:
    from pytest_gpuperf.report.pages import _cell, _code, clean, markdown

    code = _code(HOSTILE_ID)
    assert code == "``test_m.py::test_step[a`<img src=x onerror=alert(5)>`b]``"  # one backtick cannot end it
    assert _code("`edge`") == "`` `edge` ``" and _code("a|b") == "`a\\|b`"
    assert _cell("<b>x</b> | *y*") == "\\<b\\>x\\</b\\> \\| \\*y\\*"
    assert clean("kernel\x1b[31m\x07name\tx\n") == "kernel[31mname\tx\n"

    class Row:
        json = {  # noqa: RUF012
            "test": HOSTILE_ID, "verdict": "FAIL", "p50_ms": {"value": 1.0}, "p99_ms": {"value": 1.0},
            "baseline": {"status": "regressed", "summary": "+1.0% regressed"}, "bottleneck": None,
            "failure": "failed\n```\n<script>alert(1)</script>\x1b[0m",
        }  # fmt: skip

    text = markdown([Row()], {})  # type: ignore[list-item]
    assert "\x1b" not in text
    assert "````\nfailed\n```\n<script>alert(1)</script>[0m\n````" in text  # the failure's fence cannot be closed
    assert "<summary>test_m.py::test_step[a`&lt;img src=x onerror=alert(5)&gt;`b]</summary>" in text


def test_a_read_only_baselines_folder_is_named_before_measuring(pytester: pytest.Pytester) -> None:
    import subprocess

    replay_conftest(pytester, "[1.0]")
    pytester.makepyfile(test_m=MEASURED)
    folder = pytester.path / "ro"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    try:
        result = pytester.runpytest("--gpuperf", *FAST, "--gpuperf-update-baselines", "--gpuperf-baselines-dir", "ro/b")
    finally:
        subprocess.run(["umount", str(folder)], check=False)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--gpuperf-baselines-dir */ro/b: cannot write (no permission, or a read-only file system): */ro"]
    )
