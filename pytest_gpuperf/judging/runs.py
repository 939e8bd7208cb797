"""Two saved runs (``--gpuperf-json`` reports) compared test by test, with the same statistics
and gating as a baseline comparison: each test's ``entry`` in the report is what a baseline
would keep of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_gpuperf.errors import GpuperfError
from pytest_gpuperf.judging.baseline import Machine, entry_from_dict
from pytest_gpuperf.judging.compare import Comparison, compare


class RunReportError(GpuperfError, ValueError):
    """A JSON report that cannot be compared; names the file and the problem."""


@dataclass(frozen=True)
class TestChange:
    test: str
    comparison: Comparison | None  # None: not compared, for ``reason``
    reason: str = ""


def tests_of(report: Any, name: str) -> dict[str, dict[str, Any]]:
    """A report's tests by id; a report without entries (older than this release) is refused."""
    if not isinstance(report, dict) or not isinstance(report.get("tests"), list):
        raise RunReportError(f"{name}: not a --gpuperf-json report (no list of tests)")
    tests = {}
    for test in report["tests"]:
        if not isinstance(test, dict) or not isinstance(test.get("test"), str):
            raise RunReportError(f"{name}: a test without its id")
        if not isinstance(test.get("entry"), dict):
            raise RunReportError(f"{name}: {test['test']} has no entry (reports written before entries were kept)")
        tests[test["test"]] = test
    return tests


def compare_runs(before: Any, after: Any, tolerance_pct: float, names: tuple[str, str]) -> list[TestChange]:
    """Every test of either run: compared where both measured it on the same setup."""
    a, b = tests_of(before, names[0]), tests_of(after, names[1])
    changes = []
    for test in sorted(set(a) | set(b)):
        if test not in a or test not in b:
            changes.append(TestChange(test, None, f"only in {names[0] if test in a else names[1]}"))
            continue
        differences = _setup(a[test], names[0]).differences(_setup(b[test], names[1]))
        if differences:
            changes.append(TestChange(test, None, "measured on different setups: " + "; ".join(differences)))
            continue
        try:
            old, new = entry_from_dict(a[test]["entry"]), entry_from_dict(b[test]["entry"])
        except (TypeError, ValueError) as exc:
            raise RunReportError(f"{test}: unreadable entry: {exc}") from None
        changes.append(TestChange(test, compare(old, new, tolerance_pct)))
    return changes


def _setup(test: dict[str, Any], name: str) -> Machine:
    env = test.get("env")
    if not isinstance(env, dict) or not isinstance(env.get("device"), str):
        raise RunReportError(f"{name}: {test['test']} has no env")
    text = [None if env.get(k) is None else str(env[k]) for k in ("driver", "cuda", "torch")]
    return Machine(env["device"], *text)
