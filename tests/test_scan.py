"""The native scanner (``analysis/_scan.c``) against the Python reader: the same Trace, the same
``--json``, the same error, on every trace in the repository and on fuzzed ones.

Every comparison reads a file both ways through ``load``: the scanner where it reads the
document (falling back where it declines), and the Python decoder with ``GPUPERF_PURE_PYTHON=1``.
The fuzz tests also count how many documents the scanner read itself, so a scanner that
declined everything would fail them.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import re
import shutil
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_gpuperf import TraceFormatError, load
from pytest_gpuperf.analysis import native
from pytest_gpuperf.analysis.trace import Trace
from pytest_gpuperf.cli import main
from tests.fuzz import any_json, event
from tests.traces import DATA

needs_scanner = pytest.mark.skipif(not native.enabled(), reason="the native scanner is not built here")
TRACES = sorted(DATA.rglob("*.json.gz"))
RANK_FOLDERS = sorted({p.parent for p in DATA.glob("ranks/*/*.json.gz")})


@contextlib.contextmanager
def python_reader() -> Iterator[None]:
    before = os.environ.get(native.PURE_PYTHON_ENV)
    os.environ[native.PURE_PYTHON_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[native.PURE_PYTHON_ENV]
        else:
            os.environ[native.PURE_PYTHON_ENV] = before


def read(path: Path, *, python: bool = False, time_unit: str = "us") -> Trace | str:
    """The trace, or the error's text."""
    with python_reader() if python else contextlib.nullcontext():
        try:
            return load(path, time_unit=time_unit)
        except TraceFormatError as exc:
            return f"TraceFormatError: {exc}"


def both_ways(path: Path, time_unit: str = "us") -> tuple[Trace | str, Trace | str, bool]:
    """(scanner's outcome, Python reader's outcome, whether the scanner read it itself)."""
    scanned = native.scan_file(str(path), time_unit) if native.enabled() else None
    return read(path, time_unit=time_unit), read(path, python=True, time_unit=time_unit), scanned is not None


def test_the_scanner_is_built_where_a_compiler_is() -> None:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): the Python reader serves")
    assert native._scan is not None, "pip install built no native scanner although a C compiler is here"


@needs_scanner
@pytest.mark.parametrize("path", TRACES, ids=[str(p.relative_to(DATA)) for p in TRACES])
def test_every_repository_trace_is_scanned_and_read_the_same(path: Path) -> None:
    scanned, python, natively = both_ways(path)
    assert natively, "the scanner declined a real trace"
    assert isinstance(scanned, Trace) and scanned == python


@needs_scanner
@pytest.mark.parametrize(
    "paths",
    [[p] for p in TRACES] + [sorted(folder.glob("*.json.gz")) for folder in RANK_FOLDERS],
    ids=[str(p.relative_to(DATA)) for p in TRACES] + [f"{f.name}-ranks" for f in RANK_FOLDERS],
)
def test_analyze_json_is_identical_both_ways(paths: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["analyze", "--json", *map(str, paths)]
    assert main(argv) == 0
    scanned = capsys.readouterr().out
    with python_reader():
        assert main(argv) == 0
    assert scanned == capsys.readouterr().out


def pieces_of(text: bytes, rng: random.Random, largest: int) -> Iterator[bytes]:
    at = 0
    while at < len(text):
        size = rng.randint(1, largest)
        yield text[at : at + size]
        at += size


@needs_scanner
@pytest.mark.parametrize("largest", [1, 7, 300, 5000])
def test_text_cut_anywhere_reads_the_same(largest: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # A short join makes cut events longer than it: the held-and-retried path runs too.
    monkeypatch.setattr(native, "_JOIN", 16)
    text = gzip.decompress((DATA / "prefill.json.gz").read_bytes())
    whole = native.scan_pieces([text], "prefill")
    assert whole is not None
    for seed in range(3):
        cut = native.scan_pieces(pieces_of(text, random.Random(seed), largest), "prefill")
        assert cut is not None
        cut.source = whole.source
        assert cut == whole


@needs_scanner
def test_plain_and_gzip_files_and_time_units_read_the_same(tmp_path: Path) -> None:
    text = gzip.decompress((DATA / "decode_graph.json.gz").read_bytes())
    plain = tmp_path / "t.json"
    plain.write_bytes(text)
    multi = tmp_path / "multi.json.gz"  # two gzip members and padding, as concatenated files are
    multi.write_bytes(gzip.compress(text[:5000]) + b"\x00\x00" + gzip.compress(text[5000:]))
    for path in (plain, multi):
        for unit in ("us", "ns"):
            scanned, python, natively = both_ways(path, unit)
            assert natively and isinstance(scanned, Trace) and scanned == python


@needs_scanner
def test_long_whitespace_between_every_token_reads_the_same(tmp_path: Path) -> None:
    """Runs of whitespace longer than the scanner's 16-byte steps, and one broken inside by a
    byte that is not JSON whitespace (the Python reader's error)."""
    document = json.loads(gzip.decompress((DATA / "decode_graph.json.gz").read_bytes()))
    indent = "\t \r\n" * 5
    text = json.dumps(document, indent=indent, separators=(" \n\t\r  " * 4 + ",", "\r\n" * 9 + ":  \t"))
    path = tmp_path / "spread.json"
    for written, readable in ((text, True), (text.replace(indent, indent[:18] + "\x0b" + indent[18:], 1), False)):
        path.write_text(written)
        scanned, python, natively = both_ways(path)
        assert scanned == python and isinstance(python, Trace) == readable
        assert natively == readable


KERNEL_EVENT = (
    '{"ph": "X", "cat": "kernel", "name": "k", "pid": 0, "tid": 7, "ts": 1, "dur": 2, "args": {"correlation": 3}}'
)
# Events the scanner reads again holding the GIL (escapes to decode, numbers for the exact
# conversion: read natively) or declines (the rest), between ordinary ones: the batches around
# them must stay in order.
SPECIAL_EVENTS = {
    "escaped-name": (KERNEL_EVENT.replace('"k"', '"k\\u00e9\\n"'), True),
    "exponent-ts": (KERNEL_EVENT.replace('"ts": 1', '"ts": 1.5e3'), True),
    "long-ts": (KERNEL_EVENT.replace('"ts": 1', '"ts": 123456789.1234567890123'), True),
    "escaped-key": (KERNEL_EVENT.replace('"dur"', '"d\\u0075r"'), True),
    "trailing-comma": (KERNEL_EVENT + ",", False),
    "junk-between": (KERNEL_EVENT + " x", False),
    "negative-dur": (KERNEL_EVENT.replace('"dur": 2', '"dur": -2'), False),
    "list-args": (KERNEL_EVENT.replace('{"correlation": 3}', "[1, 2]"), True),
}


@needs_scanner
@pytest.mark.parametrize(("special", "native_read"), SPECIAL_EVENTS.values(), ids=SPECIAL_EVENTS.keys())
def test_events_read_holding_the_gil_or_declined_keep_their_order(
    special: str, native_read: bool, tmp_path: Path
) -> None:
    ordinary = [KERNEL_EVENT.replace('"ts": 1', f'"ts": {i}') for i in range(3000)]  # more than a batch
    path = tmp_path / "t.json"
    path.write_text('{"traceEvents": [' + ", ".join([*ordinary[:2500], special, *ordinary[2500:]]) + "]}")
    scanned, python, natively = both_ways(path)
    assert scanned == python and natively == native_read


def test_without_the_scanner_the_python_reader_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    path = DATA / "gemm.json.gz"
    monkeypatch.setattr(native, "_scan", None)
    assert not native.enabled() and native.scan_file(str(path)) is None
    assert load(path) == read(path, python=True)


def test_a_corrupt_gzip_is_the_python_readers_error(tmp_path: Path) -> None:
    raw = (DATA / "gemm.json.gz").read_bytes()
    for name, content in {"truncated": raw[:-9], "trailing": raw + b"xx", "bad-block": raw[:20] + b"\xff" * 40}.items():
        path = tmp_path / f"{name}.json.gz"
        path.write_bytes(content)
        scanned, python, _ = both_ways(path)
        assert isinstance(python, str) and scanned == python


# ---------------------------------------------------------------- fuzzing

NUMBERS = [
    *(b"0", b"-0", b"-0.0", b"1e400", b"-1e400", b"1E2", b"2.5e-3", b"12345678901234567890", b"9223372036854775807"),
    *(b"-9223372036854775808", b"1.7976931348623157e308", b"0.1", b"123456789.123456789", b"4e-320", b"01", b"1."),
    *(b"-", b"true", b"null", b'"7"', b"[1]", b"{}", b"[1e400]", b'{"a": [12345678901234567890]}'),
]
STRINGS = [
    *(b'"X"', b'"\\u0058"', b'"kernel"', b'"KERNEL"', b'"Kernel"', b'"\\u212Aernel"', b'"cpu_op"', b'"k\\"q"'),
    *(b'"\\ud83d\\ude00"', b'"\\ud83d"', b'"\\udc00x"', b'"\xc3\xa9"', b'"\xff"', b'"\xed\xa0\x80"', b'"a\\qb"'),
    *(b'"tab\there"', b'"ProfilerStep#9"', b'"aten::mm"', b'"cudaDeviceSynchronize"', b'""', b"null", b"7"),
]
KEYS = [
    *(b'"ph"', b'"cat"', b'"name"', b'"ts"', b'"dur"', b'"pid"', b'"tid"', b'"args"', b'"correlation"', b'"device"'),
    *(b'"stream"', b'"flops"', b'"traceEvents"', b'"deviceProperties"', b'"distributedInfo"', b'"\\u0074s"'),
    b'"Input Dims"',
]
NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def mutate(text: bytes, rng: random.Random) -> bytes:
    """One edit of the kinds that change what a reader must do: tokens swapped for unusual
    ones, keys repeated, whitespace, bytes flipped, cut or repeated."""
    kind = rng.randrange(9)
    if kind == 0 and (spots := list(NUMBER.finditer(text))):
        m = rng.choice(spots)
        return text[: m.start()] + rng.choice(NUMBERS) + text[m.end() :]
    if kind == 1 and (spots := list(STRING.finditer(text))):
        m = rng.choice(spots)
        return text[: m.start()] + rng.choice(STRINGS) + text[m.end() :]
    if kind == 2 and (spots := [m for m in STRING.finditer(text) if text[m.end() : m.end() + 1] == b":"]):
        m = rng.choice(spots)
        return text[: m.start()] + rng.choice(KEYS) + text[m.end() :]
    if kind == 3 and (spots := [m.start() for m in re.finditer(rb'"(?:ts|dur|name|correlation|device)":', text)]):
        at = rng.choice(spots)  # a repeated key: the decoder keeps the last
        return text[:at] + text[at : text.index(b",", at) + 1] + text[at:] if b"," in text[at:] else text
    if kind == 4:  # whitespace, some of it in runs longer than the scanner's 16-byte steps
        at = rng.randrange(len(text))
        run = bytes(rng.choice(b" \t\r\n") for _ in range(rng.randint(14, 40)))
        spaces = [b" ", b"\t", b"\r\n", b"\x0b", b"\xc2\xa0", run, run[:20] + b"\x0b" + run[20:]]
        return text[:at] + rng.choice(spaces) + text[at:]
    if kind == 5:
        at = rng.randrange(len(text))
        return text[:at] + bytes([rng.randrange(256)]) + text[at + 1 :]
    if kind == 6:
        return text[: rng.randrange(len(text))]
    if kind == 7:
        at, size = rng.randrange(len(text)), rng.randint(1, 40)
        return text[:at] + text[at + size :]
    at, size = rng.randrange(len(text)), rng.randint(1, 40)
    return text[:at] + text[at : at + size] * 2 + text[at + size :]


@needs_scanner
@pytest.mark.parametrize("source", ["gemm", "alloc", "copy", "splitk_early_start", "ranks/straggler/rank1"])
def test_mutated_real_traces_read_the_same_both_ways(source: str, tmp_path: Path) -> None:
    text = gzip.decompress((DATA / f"{source}.json.gz").read_bytes())
    rng = random.Random(source)
    path = tmp_path / "t.json"
    readable = natively = 0
    for case in range(150):
        mutated = text
        for _ in range(rng.randint(1, 3)):
            mutated = mutate(mutated, rng)
        path.write_bytes(mutated if case % 2 else gzip.compress(mutated))
        scanned, python, read_natively = both_ways(path)
        assert scanned == python, f"case {case}: {mutated[:300]!r}"
        readable += isinstance(python, Trace)
        natively += read_natively
    # Most readable mutations are ordinary documents (a number changed, whitespace): the scanner's.
    assert natively >= 0.75 * readable, f"the scanner read {natively} of the {readable} readable mutations itself"
    print(f"{source}: {readable} of 150 readable, {natively} read by the scanner")


@needs_scanner
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(event, max_size=12),
    st.dictionaries(st.sampled_from(["deviceProperties", "distributedInfo", "other"]), any_json, max_size=3),
    st.sampled_from(["us", "ns"]),
)
def test_generated_traces_read_the_same_both_ways(
    tmp_path: Path, events: list[Any], top: dict[str, Any], time_unit: str
) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({**top, "traceEvents": events}, allow_nan=True), encoding="utf-8")
    scanned, python, _ = both_ways(path, time_unit)
    assert scanned == python


@needs_scanner
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(any_json)
def test_generated_documents_read_the_same_both_ways(tmp_path: Path, document: Any) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(document, ensure_ascii=False, allow_nan=True), encoding="utf-8", errors="surrogatepass")
    scanned, python, _ = both_ways(path)
    assert scanned == python
