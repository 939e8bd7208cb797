"""torch.compile's graph breaks, recompiles and CUDA-graph skips, read from torch's own records
around a test's calls: named where they happened, judged as budgets, compared exactly with a
baseline. On the CPU with dynamo's eager backend: it records breaks and recompiles as on a GPU
(CUDA-graph skips need inductor and a GPU: tests/test_gpu.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pytest_gpuperf.judging.compare import REGRESSED, SAME, compare
from pytest_gpuperf.measuring.backend import CompileLog
from pytest_gpuperf.measuring.protocol import NOTHING_COMPILED, compile_events, compile_figure
from tests.helpers import ENTRY, FAST, replay_conftest

torch = pytest.importorskip("torch")


def _with_break(x: Any) -> Any:
    y = x.sin()
    print("", end="")  # dynamo cannot trace print: a graph break
    return y.cos()


def _clean(x: Any) -> Any:
    return x.sin().cos()


def test_the_watch_names_each_graph_break_by_its_line_and_counts_recompiles() -> None:
    from pytest_gpuperf.cuda.compiled import DynamoWatch

    torch._dynamo.reset()
    torch.compile(_clean, backend="eager")(torch.ones(2))  # compiled before the watch: not its to count
    watch = DynamoWatch()
    try:
        compiled = torch.compile(_with_break, backend="eager")
        compiled(torch.ones(4))
        compiled(torch.ones(4))  # the same guards: nothing compiles again
        first = watch.log()
        assert first.compiles >= 2  # the function, and the code after the break (and frames dynamo left alone)
        assert len(first.graph_breaks) == 1
        assert re.fullmatch(
            r".*test_compile_counts\.py:\d+ `print\(\"\", end=\"\"\)  # dynamo cannot trace print: a graph break`: "
            r"Failed to trace builtin operator",
            first.graph_breaks[0],
        ), first.graph_breaks
        assert first.recompiles == ()
        compiled(torch.ones(4, 3))  # another number of dimensions: the guards fail, both frames recompile
        later = watch.log()
        assert later.since(first).compiles >= 2
        assert len(later.recompiles) == 2
        assert any(r.startswith("_with_break (") and "tests/test_compile_counts.py" in r for r in later.recompiles)
        assert all(": " in r for r in later.recompiles)
    finally:
        watch.close()
        torch._dynamo.reset()


def test_an_eager_step_has_no_graph_break_count_but_an_exact_zero_of_recompiles() -> None:
    from pytest_gpuperf.cuda.compiled import DynamoWatch

    watch = DynamoWatch()
    try:
        _clean(torch.ones(3))
        log = watch.log()
    finally:
        watch.close()
    assert compile_figure(log, "graph_breaks") == (None, NOTHING_COMPILED)
    assert compile_figure(log, "cudagraph_skips") == (None, NOTHING_COMPILED)
    assert compile_figure(log, "recompiles") == (0.0, "")
    assert compile_events(log) == {}


def test_a_grown_count_regresses_exactly_and_names_what_appeared() -> None:

    before = CompileLog(compiles=1)
    after = CompileLog(compiles=2, graph_breaks=("model.py:7 `print(x)`: Failed to trace builtin operator",))
    old = ENTRY.updated(graph_breaks=0.0, recompiles=0.0, compile_events=compile_events(before))
    new = ENTRY.updated(graph_breaks=1.0, recompiles=0.0, compile_events=compile_events(after))
    comparison = compare(old, new, 5.0)
    change = next(c for c in comparison.changes if c.metric == "graph_breaks")
    assert comparison.status == REGRESSED and change.outcome == REGRESSED
    assert change.note == (
        "compared exactly; new: graph break: model.py:7 `print(x)`: Failed to trace builtin operator 0 -> 1"
    )
    assert compare(new, new, 5.0).status == SAME
    fewer = compare(new, old, 5.0)
    assert next(c for c in fewer.changes if c.metric == "graph_breaks").note == "compared exactly"


STEPS = """
import os
import pytest
import torch

def step(x):
    y = x.sin()
    if os.environ.get("ADD_BREAK"):
        torch._dynamo.graph_break()
    return y.cos()

@pytest.mark.gpu_budget(graph_breaks_max=0, recompiles_max=0)
def test_compiled(gpu_profiler):
    torch._dynamo.reset()  # this test compiles its step itself
    gpu_profiler(torch.compile(step, backend="eager"), torch.ones(8))
"""


@pytest.fixture
def compiled_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("ADD_BREAK", raising=False)
    replay_conftest(pytester, "[1.0, 1.001, 0.999]", trace=None)
    pytester.makepyfile(test_steps=STEPS)
    return pytester


def test_a_graph_break_fails_its_budget_and_its_baseline_naming_the_line(
    compiled_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(*args: str) -> pytest.RunResult:
        return compiled_suite.runpytest_subprocess("-p", "no:cacheprovider", "--gpuperf", *FAST, *args)

    run("--gpuperf-update-baselines").assert_outcomes(passed=1)
    recorded = next(compiled_suite.path.glob("baselines/*/test_steps.yaml")).read_text()
    assert "graph_breaks: 0" in recorded and "recompiles: 0" in recorded
    run().assert_outcomes(passed=1)  # unchanged: the counts are the same

    monkeypatch.setenv("ADD_BREAK", "1")
    result = run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  graph_breaks = 1 > budget 0 (over by 1)",
            "    - test_steps.py:8 `torch._dynamo.graph_break()`: Call to `torch._dynamo.graph_break()`",
            "    fix: each break splits the step into graphs run from Python*",
            "    graph_breaks 0 -> 1 (from none): regressed; compared exactly; new: graph break: "
            "test_steps.py:8 `torch._dynamo.graph_break()`: Call to `torch._dynamo.graph_break()` 0 -> 1",
        ]
    )


def test_a_cudagraph_skip_is_named_with_the_user_line_inductor_found_it_in() -> None:
    from pytest_gpuperf.cuda.compiled import _skip_reason

    # inductor's message as it logs it (torch/_inductor/cudagraph_utils.py), its stack the user's code
    message = (
        "skipping cudagraphs due to mutated inputs (1 instances). Found from : \n"
        '   File "/work/model.py", line 72, in forward\n'
        "    x.mul_(1.0)\n"
    )
    assert _skip_reason(message) == (
        "skipping cudagraphs due to mutated inputs (1 instances), at /work/model.py:72 `x.mul_(1.0)`"
    )
    assert _skip_reason("skipping cudagraphs due to cpu device (arg0_1)") == (
        "skipping cudagraphs due to cpu device (arg0_1)"
    )
