"""The metric registry: one row per metric, and a new row is all a new metric needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_gpuperf.judging import registry
from pytest_gpuperf.judging.budget import KEYS, parse_budget
from pytest_gpuperf.judging.registry import METRICS, NUMBER, POINT, TRACE, Metric, check

ROOT = Path(__file__).resolve().parent.parent


def test_the_table_is_consistent_and_every_budget_key_has_its_row() -> None:
    check()
    assert set(KEYS) == {m.budget for m in METRICS if m.budget}


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (Metric("p50_ms", "ms", False, TRACE, POINT, NUMBER, "again", gate="gpu time"), "a name twice"),
        (Metric("x", "", False, "somewhere", POINT, NUMBER, "", gate="counts"), "source 'somewhere'"),
        (Metric("x", "", False, TRACE, POINT, NUMBER, ""), "a compared metric with no gate"),
        (Metric("x", "", False, TRACE, POINT, NUMBER, "", gate="speed"), "gate 'speed'"),
        (Metric("x", "", False, TRACE, POINT, NUMBER, "", gate="counts", details="nothing"), "details 'nothing'"),
        (Metric("x", "", False, TRACE, POINT, NUMBER, "", budget="p99_ms", gate="counts"), "a budget key twice"),
    ],
)
def test_a_wrong_row_is_refused_by_name(row: Metric, problem: str) -> None:
    with pytest.raises(ValueError, match=f"metric {row.name}: .*{problem}"):
        check((*METRICS, row))


def test_marker_help_lists_every_budget_key(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    help_line = next(line for line in result.outlines if line.startswith("@pytest.mark.gpu_budget("))
    assert all(f"{key}=" in help_line for key in KEYS)


# A metric the analysis already computes (DeviceMetrics.busy_us_per_step) that no row names.
NEW_ROW = (
    '    Metric("busy_us_per_step", "us", False, TRACE, POINT, NUMBER, "device busy time per step",\n'
    '           budget="busy_us_per_step_max", gate="gpu time"),\n'
)
CHECKS = textwrap.dedent(
    """
    from pathlib import Path
    from pytest_gpuperf.judging.baseline import Machine, parse, render
    from pytest_gpuperf.judging.budget import FAIL, parse_budget
    from pytest_gpuperf.judging.compare import REGRESSED, compare
    from pytest_gpuperf.measuring.config import ProtocolConfig
    from pytest_gpuperf.measuring.protocol import measure
    from tests.replay import ReplayBackend

    trace = Path(ROOT) / "tests/data/traces/prefill.json.gz"
    config = ProtocolConfig(warmup_calls=1, warmup_ms=0.0, rounds=3, round_ms=0.0, max_rounds=3, profile_steps=3)
    budget = parse_budget((), {"busy_us_per_step_max": 1.0})
    m = measure(ReplayBackend([1.0], trace=trace), lambda: None, config, test_id="t", budget=budget,
                items=None, trace_path=Path(TMP) / "t.json.gz")
    (result,) = m.budgets
    assert result.status == FAIL and result.metric == "busy_us_per_step", result
    busy = m.entry.figure("busy_us_per_step")
    assert busy == m.device.busy_us_per_step > 0
    text = render(Machine("g"), {"t": m.entry})
    assert "busy_us_per_step:" in text, text
    (again,) = parse(Path("b.yaml"), text).entries.values()
    slower = again.updated(busy_us_per_step=busy * 1.5)
    change = next(c for c in compare(again, slower, 5.0).changes if c.metric == "busy_us_per_step")
    assert change.gated and change.outcome == REGRESSED, change
    assert compare(again, slower, 5.0).status == REGRESSED
    print("ok")
    """
)


def test_a_new_row_is_all_a_new_metric_needs(tmp_path: Path) -> None:
    """In a copy of the package with one row added: its budget key is accepted and judged, the
    measurement's entry carries it, the baseline file keeps and reads it, and the comparison gates it."""
    copy = tmp_path / "pytest_gpuperf"
    shutil.copytree(ROOT / "pytest_gpuperf", copy, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    table = copy / "judging" / "registry.py"
    source = table.read_text()
    anchor = ")  # fmt: skip\n\nBY_NAME"
    assert anchor in source
    table.write_text(source.replace(anchor, NEW_ROW + anchor))
    with pytest.raises(Exception, match="busy_us_per_step_max"):
        parse_budget((), {"busy_us_per_step_max": 1.0})  # the installed table has no such key
    done = subprocess.run(
        [sys.executable, "-c", f"TMP, ROOT = {str(tmp_path)!r}, {str(ROOT)!r}\n" + CHECKS],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "GPUPERF_PURE_PYTHON": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_every_kept_metric_is_read_from_a_baseline_by_its_shape() -> None:
    from pytest_gpuperf.judging.baseline import ENTRY_FIELDS, PARSERS

    assert set(ENTRY_FIELDS) == {m.name for m in METRICS if registry.kept(m)}
    assert all(m.shape in PARSERS for m in METRICS)


def test_the_metric_reference_in_docs_is_the_registry_s_output() -> None:
    from pytest_gpuperf.report.reference import metrics_markdown

    written = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert written == metrics_markdown(), "regenerate: python -m pytest_gpuperf.report.reference > docs/metrics.md"
