"""Bad traces give correct metrics or one TraceFormatError naming the file; never a crash."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_gpuperf import TraceFormatError, analyze, load
from tests.fuzz import any_json, event
from tests.traces import DATA, kernel, runtime, trace


def write(tmp_path: Path, content: bytes, name: str = "t.json") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


KERNEL_AT = b'{"traceEvents": [{"ph": "X", "cat": "kernel", "name": "k", '
BAD_TRACES = {
    "empty": (b"", "file is empty"),
    "blank": (b"   \n", "file is empty"),
    "truncated": (b'{"traceEvents": [{"ph": "X", "cat": "kernel"', "not valid JSON: the file ends early (truncated?)"),
    "not-json": (b'{"traceEvents": []}\nthis is not json', "not valid JSON at line 2"),
    "binary": (b"\x80\x81garbage", "not valid JSON at line 1, column 1: invalid character"),
    "nan": (KERNEL_AT + b'"ts": NaN, "dur": 1}]}', "not valid JSON at line 1, column 66"),
    "huge-int": (KERNEL_AT + b'"ts": 1' + b"0" * 40 + b', "dur": 1}]}', "no finite numeric"),
    "huger-int": (KERNEL_AT + b'"ts": 1' + b"0" * 5000 + b', "dur": 1}]}', "Integer value out of range"),
    "deep": (b"[" * 100000, "JSON nested too deeply"),
    "top-string": (b'"a string"', "top level is a string, expected an object"),
    "top-number": (b"42", "top level is a number, expected an object"),
    "no-events": (b'{"events": []}', "no 'traceEvents' array"),
    "events-object": (b'{"traceEvents": {"a": 1}}', "no 'traceEvents' array"),
    "event-number": (b'{"traceEvents": [1, 2]}', "event 0 is a number, expected an object"),
    "no-ts": (KERNEL_AT + b'"dur": 1}]}', "event 0 (kernel) has no finite numeric 'ts' and 'dur'"),
    "string-ts": (KERNEL_AT + b'"ts": "1", "dur": 1}]}', "no finite numeric"),
    "bool-dur": (KERNEL_AT + b'"ts": 1, "dur": true}]}', "no finite numeric"),
    "int-past-int64": (KERNEL_AT + b'"ts": 1' + b"0" * 19 + b', "dur": 1}]}', "no finite numeric"),
    "negative-dur": (KERNEL_AT + b'"ts": 1, "dur": -2}]}', "negative duration"),
    "no-name": (b'{"traceEvents": [{"ph": "X", "cat": "kernel", "ts": 1, "dur": 1}]}', "no 'name' string"),
}


@pytest.mark.parametrize(("content", "problem"), BAD_TRACES.values(), ids=BAD_TRACES.keys())
def test_malformed_traces_raise_one_clear_error_naming_the_file(tmp_path: Path, content: bytes, problem: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(TraceFormatError) as info:
        load(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="cannot read file"):
        load(tmp_path / "nope.json")


def test_truncated_gzip(tmp_path: Path) -> None:
    whole = (DATA / "gemm.json.gz").read_bytes()
    path = write(tmp_path, whole[: len(whole) // 2], "t.json.gz")
    with pytest.raises(TraceFormatError, match="corrupt or truncated gzip"):
        load(path)


def test_gzip_is_detected_by_content_not_by_name(tmp_path: Path) -> None:
    path = write(tmp_path, gzip.compress(json.dumps(trace(kernel(0, 1))).encode()), "no_suffix")
    assert analyze(load(path)).primary is not None


def test_an_event_array_at_top_level_is_a_valid_chrome_trace(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps([kernel(0, 2), kernel(3, 1)]).encode())
    m = analyze(load(path)).primary
    assert m is not None
    assert (m.busy_us, m.span_us, m.gpu_active_pct) == (3.0, 4.0, 75.0)


def test_events_out_of_order_give_the_same_metrics() -> None:
    events = [runtime(0, 1, corr=1), kernel(2, 3, corr=1), runtime(6, 1, corr=2), kernel(8, 1, corr=2)]
    forward = analyze(load(trace(*events))).to_dict()
    backward = analyze(load(trace(*reversed(events)))).to_dict()
    assert forward == backward


def test_large_integer_timestamps_keep_nanosecond_precision() -> None:
    # Timestamps past 2**53 (as a converter writing integer nanoseconds since the
    # epoch would) lose whole units as floats; the loader rebases them exactly first.
    base = 1_732_000_000_000_000_000
    result = analyze(load(trace(kernel(base, 3), kernel(base + 4, 1), kernel(base + 7, 1))))
    m = result.primary
    assert m is not None
    assert (m.busy_us, m.span_us) == (5.0, 8.0)
    assert m.gaps.count == 2


def test_nanosecond_time_unit_for_converters_that_write_nanoseconds() -> None:
    m = analyze(load(trace(kernel(0, 1500), runtime(0, 3000, "cudaMalloc"), kernel(2000, 500)), time_unit="ns")).primary
    assert m is not None
    assert (m.busy_us, m.span_us) == (2.0, 2.5)
    assert m.allocations.worst_ms == 0.003
    with pytest.raises(ValueError, match="time_unit"):
        load(trace(), time_unit="ms")


def test_absurd_shapes_and_flop_counts_are_ignored_not_overflowed() -> None:
    huge = 10**200
    t = load(
        trace(
            {
                "ph": "X",
                "cat": "cpu_op",
                "name": "aten::mm",
                "ts": 0,
                "dur": 1,
                "args": {"Input Dims": [[huge, huge], [huge, huge]], "Input type": ["float", "float"], "flops": huge},
            },
            kernel(0, 1),
        )
    )
    assert t.flop_ops == []
    assert analyze(t).primary is not None


def test_a_shape_beyond_double_range_is_no_shape_not_a_crash(tmp_path: Path) -> None:
    # Valid JSON that the decoder reads around (shapes are decoded only for FLOP operators).
    op = b'{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 1, '
    op += b'"args": {"Input Dims": [[1e400, 2], [2, 2]], "Input type": ["float", "float"]}}'
    path = write(tmp_path, b'{"traceEvents": [' + op + b", " + json.dumps(kernel(0, 1)).encode() + b"]}")
    t = load(path)
    assert t.flop_ops == [] and len(t.ops) == 1


def test_events_of_other_phases_and_categories_are_ignored() -> None:
    m = analyze(
        load(
            trace(
                {"ph": "i", "cat": "cpu_instant_event", "name": "[memory]", "ts": 0, "args": {}},
                {"ph": "f", "cat": "ac2g", "id": 1, "ts": 1},
                {"ph": "M", "name": "process_name", "args": {"name": "python"}},
                {"ph": "X", "cat": "python_function", "name": "f", "ts": "not checked", "dur": None},
                {"ph": "X", "cat": None, "name": "x"},
                kernel(0, 1),
            )
        )
    ).primary
    assert m is not None and m.device_ops == 1


def _analyze_or_trace_error(source: Any) -> None:
    try:
        result = analyze(load(source))
    except TraceFormatError:
        return
    json.dumps(result.to_dict())  # whatever loads must also report


@settings(max_examples=300, deadline=None)
@given(
    st.lists(event, max_size=12),
    st.dictionaries(st.sampled_from(["deviceProperties", "distributedInfo"]), any_json, max_size=2),
)
def test_fuzzed_trace_events_never_crash(events: list[Any], top: dict[str, Any]) -> None:
    _analyze_or_trace_error({"traceEvents": events, **top})


@settings(max_examples=200, deadline=None)
@given(any_json)
def test_fuzzed_json_documents_never_crash(document: Any) -> None:
    if isinstance(document, dict):
        _analyze_or_trace_error(document)
    _analyze_or_trace_error({"traceEvents": document})


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzzed_bytes_never_crash(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "t.json"
    path.write_bytes(raw)
    _analyze_or_trace_error(path)
    path.write_bytes(gzip.compress(raw))
    _analyze_or_trace_error(path)
    path.write_bytes(b"SQLite format 3\x00" + raw)
    _analyze_or_trace_error(path)


@pytest.mark.parametrize("pure_python", ["0", "1"])
def test_a_gzip_bomb_is_refused_while_streaming_in_both_readers(tmp_path: Path, pure_python: str) -> None:
    """200 MB of JSON whitespace in a 200 KB gzip: refused once it inflates past 64 MB, within the
    memory a real trace of that size needs (the cap was 4 GiB: 22 s and 4.4 GB to refuse one).
    One call inflated up to 1000 times a 64 KB piece: each call is now bounded to 1 MB."""
    import gzip
    import subprocess
    import sys

    bomb = tmp_path / "bomb.json.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        out.write(b'{"traceEvents": [')
        chunk = b" " * 2**20
        for _ in range(200):
            out.write(chunk)
        out.write(b"]}")
    script = (
        "import sys\n"
        "from pytest_gpuperf.analysis.load import load\n"
        "from pytest_gpuperf.analysis.trace import TraceFormatError\n"
        "try:\n    load(sys.argv[1])\nexcept TraceFormatError as exc:\n    print(exc)\n"
        # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's from before exec)
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) // 1024)\n"
    )
    env = {**os.environ, "GPUPERF_PURE_PYTHON": pure_python}
    done = subprocess.run(
        [sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, env=env, check=True
    )
    message, peak_mb = done.stdout.strip().splitlines()
    assert "decompresses to more than 100 times its" in message and "gzip bomb" in message
    assert int(peak_mb) < 200, done.stdout  # 81 MB here: 64 MB of text at most, inflated 1 MB a call
