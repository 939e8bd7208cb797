"""`gpuperf compare A.json B.json`: two saved runs, test by test; and the run metadata the JSON
report carries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_gpuperf.cli import main
from pytest_gpuperf.runinfo import git_commit
from tests.conftest import REPO_ON_PATH
from tests.helpers import FAST
from tests.traces import DATA

SUITE = """
import pytest

def test_gemm(gpu_profiler):
    gpu_profiler(lambda: None)

def test_other(gpu_profiler):
    gpu_profiler(lambda: None)
"""


def saved_run(pytester: pytest.Pytester, name: str, scale: float, torch: str = "2.11.0+cu130") -> Path:
    """A --gpuperf-json report of the suite replayed with call times ``scale`` x the first run's."""
    samples = [scale * t for t in (1.0, 1.01, 0.99, 1.02, 0.98)]
    pytester.makeconftest(
        f"""
        from pathlib import Path
        {REPO_ON_PATH}
        from tests.replay import ReplayBackend

        def pytest_gpuperf_make_backend(config, settings):
            return ReplayBackend({samples!r}, trace=Path({str(DATA / "gemm.json.gz")!r}), torch={torch!r})
        """
    )
    pytester.makepyfile(test_suite=SUITE)
    report = pytester.path / name
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gpuperf", *FAST, "--gpuperf-json", str(report))
    return report


def test_a_slower_run_regresses_with_its_cause_and_an_unchanged_one_is_the_same(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    a = saved_run(pytester, "a.json", 1.0)
    again = saved_run(pytester, "again.json", 1.0)
    slower = saved_run(pytester, "slower.json", 1.3)
    assert main(["compare", str(a), str(again)]) == 0
    out = capsys.readouterr().out
    assert "2 tests: 2 same; 0 not compared" in out
    assert main(["compare", str(a), str(slower), "--fail-on-regression"]) == 1
    out = capsys.readouterr().out
    assert "+30.0% regressed" in out and "2 tests: 2 regressed; 0 not compared" in out
    assert "test_suite.py::test_gemm: regressed\n  p50_ms 1 -> 1.3 (+30.0%): regressed" in out
    assert main(["compare", str(a), str(slower), "--tolerance", "50"]) == 0  # within 50%: the same
    assert "2 same" in capsys.readouterr().out


def test_runs_on_different_setups_are_not_compared_and_bad_files_are_named(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a = saved_run(pytester, "a.json", 1.0)
    other = saved_run(pytester, "other.json", 1.0, torch="2.12.0+cu130")
    assert main(["compare", str(a), str(other)]) == 0
    assert "not compared (measured on different setups: torch 2.11.0+cu130 in the baseline" in capsys.readouterr().out
    old = json.loads(a.read_text())
    for test in old["tests"]:
        del test["entry"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "broken.json").write_text("{")
    for bad, message in (
        ("old.json", "has no entry (reports written before entries were kept)"),
        ("broken.json", "broken.json: not valid JSON"),
        ("missing.json", "missing.json: cannot read file"),
    ):
        assert main(["compare", str(a), str(tmp_path / bad)]) == 2
        assert message in capsys.readouterr().err


def test_the_json_report_says_when_from_which_commit_and_on_what(pytester: pytest.Pytester) -> None:
    report = json.loads(saved_run(pytester, "a.json", 1.0).read_text())
    run = report["run"]
    assert run["device"] == "NVIDIA H100 80GB HBM3" and run["torch"] == "2.11.0+cu130"
    assert run["git_commit"] is None and run["python"] and run["started_at"].endswith("+00:00")


def test_the_commit_is_read_from_the_repository_files(tmp_path: Path) -> None:
    sha, other = "a" * 40, "b" * 40
    git = tmp_path / "repo" / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text(sha + "\n")
    inside = tmp_path / "repo" / "tests"
    inside.mkdir()
    assert git_commit(inside) == sha
    (git / "refs" / "heads" / "main").unlink()
    (git / "packed-refs").write_text(f"# pack-refs with: peeled\n{other} refs/heads/main\n")
    assert git_commit(inside) == other
    (git / "HEAD").write_text(sha)  # detached
    assert git_commit(inside) == sha
    worktree = tmp_path / "wt"
    (worktree / "sub").mkdir(parents=True)
    (git / "worktrees" / "wt").mkdir(parents=True)
    (git / "worktrees" / "wt" / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "worktrees" / "wt" / "commondir").write_text("../..\n")
    (worktree / ".git").write_text(f"gitdir: {git / 'worktrees' / 'wt'}\n")
    assert git_commit(worktree / "sub") == other
    assert git_commit(tmp_path) is None
