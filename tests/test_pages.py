"""--gpuperf-html and --gpuperf-markdown from a real pytest run (a replay backend with a recorded
H100 GEMM trace): a recorded baseline, then the step 30% slower. The page is rendered by a
real headless browser where one is installed (``apt-get install chromium``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ON_PATH
from tests.helpers import FAST
from tests.traces import DATA


@pytest.fixture
def regressed_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("REPLAY_SCALE", raising=False)
    pytester.makeconftest(
        f"""
        import os
        from pathlib import Path
        {REPO_ON_PATH}
        from tests.replay import ReplayBackend

        def pytest_gpuperf_make_backend(config, settings):
            scale = float(os.environ.get("REPLAY_SCALE", "1"))
            trace = Path({str(DATA / "gemm.json.gz")!r})
            return ReplayBackend([0.2 * scale, 0.201 * scale, 0.199 * scale], trace=trace)
        """
    )
    pytester.makepyfile(
        test_gemm="""
        import pytest

        @pytest.mark.gpu_budget(p99_ms=1)
        def test_gemm(gpu_profiler):
            gpu_profiler(lambda: None)

        def test_unbudgeted(gpu_profiler):
            gpu_profiler(lambda: None)
        """
    )
    args = ["-p", "no:cacheprovider", "--gpuperf", *FAST]
    pytester.runpytest_subprocess(*args, "--gpuperf-update-baselines").assert_outcomes(passed=2)
    monkeypatch.setenv("REPLAY_SCALE", "1.3")
    summary = pytester.path / "summary.md"
    summary.write_text("earlier step's summary\n")  # a step summary file: gpuperf appends
    result = pytester.runpytest_subprocess(
        *args, "--gpuperf-html", "report/gpuperf.html", "--gpuperf-markdown", str(summary)
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        ["gpuperf: HTML report written to */report/gpuperf.html", "gpuperf: Markdown summary appended to */summary.md"]
    )
    return pytester


def test_the_markdown_summary_tabulates_every_test_and_quotes_each_failure(regressed_run: pytest.Pytester) -> None:
    text = (regressed_run.path / "summary.md").read_text()
    assert text.startswith("earlier step's summary\n### gpuperf: 2 measured on NVIDIA H100 80GB HBM3")
    assert ": 2 failed, 2 regressed against their baselines" in text
    assert "| test | p50 ms | p99 ms | against baseline | bottleneck | verdict |" in text
    assert "| `test_gemm.py::test_gemm` | 0.26 | " in text
    assert "+30.0% regressed (latency, gpu, host, counts) | compute-bound | :x: FAIL |" in text
    assert "<details><summary>test_gemm.py::test_gemm</summary>" in text
    assert "  regressed against its baseline baselines/nvidia-h100-80gb-hbm3/test_gemm.yaml (tolerance 5%):" in text


def test_the_html_page_is_self_contained_and_shows_each_verdict_with_its_evidence(
    regressed_run: pytest.Pytester,
) -> None:
    page = (regressed_run.path / "report" / "gpuperf.html").read_text()
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")  # nothing fetched
    assert page.count('<section class="fail">') == 2
    assert 'aria-label="round medians"' in page and "baseline</text>" in page  # both runs' rounds
    assert "p50 now / baseline: 1.300 (95% CI" in page
    assert "bottleneck: compute-bound" in page and "try first:" in page
    assert "p50_ms 0.2 -&gt; 0.26: regressed" in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs a headless browser (apt-get install chromium)")
def test_a_browser_renders_the_page(regressed_run: pytest.Pytester, tmp_path: Path) -> None:
    shot = tmp_path / "gpuperf.png"
    page = regressed_run.path / "report" / "gpuperf.html"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1000,1400",
         page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
