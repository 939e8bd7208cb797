"""Host work per step: Python lines and calls counted, the same in every process for unchanged code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_gpuperf.judging.compare import REGRESSED, SAME, compare
from pytest_gpuperf.judging.entry import Entry
from pytest_gpuperf.measuring.hostwork import count_host_work, count_once, short_path

BASE = {"samples": 30, "p50_ms": 9.0, "p99_ms": 12.0, "p99_ci_ms": (11.0, 13.0), "round_medians_ms": (9.0, 9.1, 8.9)}


def layer(x: int, extra: int = 0) -> int:
    for _ in range(3 + extra):
        x += 1
    return x


def model(extra: int = 0) -> int:
    return sum(layer(i, extra) for i in range(4))


def test_a_call_counts_its_own_lines_and_calls_only() -> None:
    lines, calls, by_code = count_once(model)
    # Frames entered: model, the generator (started, then resumed for each of 4 items), 4 layers.
    assert calls == 1 + 5 + 4
    by_name = {code.co_name: n for code, n in by_code.items()}
    assert set(by_name) == {"model", "<genexpr>", "layer"} and lines == sum(by_name.values())
    assert by_name["layer"] % 4 == 0  # four calls of the same lines


def test_more_python_work_counts_more_lines_and_names_the_function() -> None:
    before = count_host_work(lambda: model(), 3)
    after = count_host_work(lambda: model(extra=2), 3)
    assert len(set(before.lines_per_call)) == 1 and before.unsteady == ""
    # Two more loop iterations in each of four layers: the loop's two lines, twice, four times.
    assert after.lines == before.lines + 4 * 2 * 2
    assert before.tracer.startswith("sys.settrace on cpython")
    name = f"{short_path(__file__)}:layer"
    assert after.lines_by_function[name] == before.lines_by_function[name] + 16
    assert next(iter(before.lines_by_function)) == name  # most lines first


def test_the_counts_are_the_same_in_fresh_processes() -> None:
    script = (
        "from tests.test_hostwork import model\n"
        "from pytest_gpuperf.measuring.hostwork import count_host_work, count_once\n"
        "print(count_host_work(model, 3).lines_per_call, count_once(model)[0])"
    )
    root = Path(__file__).resolve().parent.parent
    outputs = {
        subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    lines = count_once(model)[0]
    assert outputs == {f"({lines}, {lines}, {lines}) {lines}\n"}


def test_a_step_whose_work_varies_between_calls_is_not_gated_on_it() -> None:
    calls = iter(range(10))
    work = count_host_work(lambda: model(extra=next(calls)), 3)
    assert "ran different numbers of Python lines" in work.unsteady


def test_a_tracer_already_set_is_put_back() -> None:
    previous = sys.gettrace()
    try:
        seen: list[str] = []

        def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
            seen.append(event)

        sys.settrace(tracer)
        count_once(model)
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(previous)


def test_an_exception_in_the_step_still_removes_the_counter() -> None:
    def broken() -> None:
        raise KeyError("the step's own")

    with pytest.raises(KeyError, match="the step's own"):
        count_once(broken)
    assert sys.gettrace() is None or "coverage" in repr(sys.gettrace())


def entry(lines: float, counter: str = "sys.settrace on cpython 3.12", **more: object) -> Entry:
    return Entry.of(**BASE, host_lines_per_step=lines, host_counter=counter, **more)


def test_grown_host_work_regresses_and_names_the_functions_that_grew_most() -> None:
    old = entry(1319.0, host_lines={"modeling_llama.py:LlamaAttention.forward": 400.0, "module.py:_call_impl": 300.0})
    new = entry(1500.0, host_lines={"modeling_llama.py:LlamaAttention.forward": 581.0, "module.py:_call_impl": 300.0})
    result = compare(old, new, 5.0)
    (change,) = [c for c in result.changes if c.metric == "host_lines_per_step"]
    assert change.outcome == REGRESSED and change.gated and result.status == REGRESSED
    assert "grew most: modeling_llama.py:LlamaAttention.forward 400 -> 581" in change.note
    assert result.gates()["host work"] == REGRESSED
    assert compare(old, entry(1319.0), 5.0).status == SAME


def test_counts_of_another_python_are_reported_not_gated() -> None:
    result = compare(entry(1319.0, "sys.settrace on cpython 3.11"), entry(1600.0), 5.0)
    (change,) = [c for c in result.changes if c.metric == "host_lines_per_step"]
    assert not change.gated and "counted by sys.settrace on cpython 3.11 in the baseline" in change.note
    assert result.status == SAME and "host work" not in result.gates()


def test_a_baseline_without_the_new_metrics_names_what_it_lacks() -> None:
    result = compare(Entry.of(**BASE), entry(1319.0, gpu_ms_per_step=0.6), 5.0)
    assert result.lacking == ("gpu_ms_per_step", "host_lines_per_step") and result.status == SAME


def test_the_plugin_s_own_frames_around_the_step_are_not_counted() -> None:
    from pytest_gpuperf.benchmark import MeasuredBenchmark

    counted: list[int] = []

    class Fixture:
        def __call__(self, fn, *args):  # type: ignore[no-untyped-def]
            return fn(*args)

    def measure(step) -> None:  # type: ignore[no-untyped-def]
        counted.append(count_once(step)[0])

    MeasuredBenchmark(Fixture(), measure)(layer, 1)
    assert counted == [count_once(lambda: layer(1))[0] - 1]  # the lambda's own line, not the plugin's
