"""Nsight Systems SQLite exports: the same metrics as the equivalent Chrome trace.

nsys is not on our GPU machine, so these files are built here following the
export schema (CUPTI_ACTIVITY_KIND_* tables, StringIds, integer nanoseconds).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from pytest_gpuperf import TraceFormatError, analyze, load
from tests.traces import kernel, runtime, trace

EPOCH_NS = 1_732_000_000_000_000_000  # nsys times can be absolute: far past 2**53

SCHEMA = """
CREATE TABLE StringIds (id INTEGER PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER,
    contextId INTEGER, streamId INTEGER, correlationId INTEGER, globalPid INTEGER, demangledName INTEGER,
    shortName INTEGER, gridX INTEGER, blockX INTEGER);
CREATE TABLE CUPTI_ACTIVITY_KIND_MEMCPY (start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER,
    contextId INTEGER, streamId INTEGER, correlationId INTEGER, globalPid INTEGER, bytes INTEGER, copyKind INTEGER);
CREATE TABLE CUPTI_ACTIVITY_KIND_MEMSET (start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER,
    contextId INTEGER, streamId INTEGER, correlationId INTEGER, globalPid INTEGER, value INTEGER, bytes INTEGER);
CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME (start INTEGER NOT NULL, end INTEGER NOT NULL, eventClass INTEGER,
    globalTid INTEGER, correlationId INTEGER, nameId INTEGER, returnValue INTEGER, callchainId INTEGER);
"""

STRINGS = {
    1: "cudaLaunchKernel",
    2: "ncclDevKernel_AllReduce",
    3: "ampere_bf16_gemm",
    4: "cudaMalloc",
    5: "cudaStreamSynchronize",
    6: "cudaMemcpyAsync",
    7: "cudaGraphLaunch",
    8: "cudaFree",
}

# (start_us, dur_us, name id, correlation, stream) for kernels; the same for runtime calls
KERNELS = [(2.0, 3.5, 3, 1, 7), (4.0, 2.0, 2, 2, 20), (12.25, 1.5, 3, 3, 7), (20.0, 2.0, 3, 4, 7), (23.0, 1.0, 3, 4, 7)]
RUNTIME = [
    (0.0, 1.0, 1, 1),
    (1.0, 1.0, 1, 2),
    (11.0, 0.5, 1, 3),
    (13.0, 4.0, 5, 0),
    (14.0, 2500.0, 4, 0),
    (19.0, 0.5, 7, 4),
    (26.0, 1.0, 6, 5),
    (30.0, 1200.0, 8, 0),
]
MEMCPY = [(27.0, 2.0, 5, 7)]
MEMSET = [(30.5, 0.5, 0, 7)]


def ns(us: float) -> int:
    return EPOCH_NS + round(us * 1000)


def run_sql(path: Path, script: str) -> None:
    """Run statements on a SQLite file and commit them."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(script)


def build_export(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.executemany("INSERT INTO StringIds VALUES (?, ?)", STRINGS.items())
    conn.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL (start, end, deviceId, streamId, correlationId, demangledName, "
        "shortName) VALUES (?, ?, 0, ?, ?, ?, ?)",
        [(ns(s), ns(s + d), stream, corr, name, name) for s, d, name, corr, stream in KERNELS],
    )
    conn.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME (start, end, globalTid, correlationId, nameId) VALUES (?, ?, 1, ?, ?)",
        [(ns(s), ns(s + d), corr, name) for s, d, name, corr in RUNTIME],
    )
    conn.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_MEMCPY (start, end, deviceId, streamId, correlationId, bytes, copyKind) "
        "VALUES (?, ?, 0, ?, ?, 1024, 1)",
        [(ns(s), ns(s + d), stream, corr) for s, d, corr, stream in MEMCPY],
    )
    conn.executemany(
        "INSERT INTO CUPTI_ACTIVITY_KIND_MEMSET (start, end, deviceId, streamId, correlationId, bytes) "
        "VALUES (?, ?, 0, ?, ?, 1024)",
        [(ns(s), ns(s + d), stream, corr) for s, d, corr, stream in MEMSET],
    )
    conn.commit()
    conn.close()
    return path


def same_trace_as_chrome() -> dict[str, object]:
    events = [kernel(s, d, STRINGS[n], corr=c, stream=st) for s, d, n, c, st in KERNELS]
    events += [runtime(s, d, STRINGS[n], corr=c or None) for s, d, n, c in RUNTIME]
    events += [
        {
            "ph": "X",
            "cat": "gpu_memcpy",
            "name": "Memcpy",
            "ts": s,
            "dur": d,
            "args": {"device": 0, "stream": st, "correlation": c},
        }
        for s, d, c, st in MEMCPY
    ]
    events += [
        {
            "ph": "X",
            "cat": "gpu_memset",
            "name": "Memset",
            "ts": s,
            "dur": d,
            "args": {"device": 0, "stream": st, "correlation": c},
        }
        for s, d, c, st in MEMSET
    ]
    return trace(*events)


def test_nsys_export_gives_the_metrics_of_the_same_chrome_trace(tmp_path: Path) -> None:
    from_nsys = analyze(load(build_export(tmp_path / "run.sqlite"))).to_dict()
    from_chrome = analyze(load(same_trace_as_chrome())).to_dict()  # type: ignore[arg-type]
    for key in (
        "gpu_active_pct",
        "busy_us",
        "span_us",
        "dispatch_ratio",
        "nccl_pct",
        "kernels",
        "device_ops",
        "launches",
        "gaps",
        "memcpy",
        "memset",
        "allocations",
        "frees",
        "allocator_stall_us",
    ):
        assert from_nsys[key] == pytest.approx(from_chrome[key]), key
    assert from_nsys["nccl_pct"] == pytest.approx(100 * 2.0 / 10.0)
    assert from_nsys["launches"]["graph"] == 1
    assert from_nsys["allocations"]["slow"] == 1
    assert from_nsys["frees"]["slow"] == 1


def test_nsys_times_far_past_two_to_the_53_keep_nanoseconds(tmp_path: Path) -> None:
    m = analyze(load(build_export(tmp_path / "run.sqlite"))).primary
    assert m is not None
    assert m.span_us == pytest.approx(31.0 - 2.0)
    assert m.busy_us == pytest.approx(4.0 + 1.5 + 2.0 + 1.0 + 2.0 + 0.5)


def test_an_unrelated_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    run_sql(path, "CREATE TABLE users (id INTEGER)")
    with pytest.raises(TraceFormatError, match="no CUPTI_ACTIVITY_KIND_"):
        load(path)


def test_a_corrupt_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    good = build_export(tmp_path / "run.sqlite").read_bytes()
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(good[:200])
    with pytest.raises(TraceFormatError, match=str(bad)):
        load(bad)


def test_rows_that_end_before_they_start_are_refused(tmp_path: Path) -> None:
    path = build_export(tmp_path / "run.sqlite")
    run_sql(path, "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET end = start - 5 WHERE correlationId = 1")
    with pytest.raises(TraceFormatError, match="ends before it starts"):
        load(path)


def test_an_export_with_runtime_calls_only_has_no_gpu_metrics(tmp_path: Path) -> None:
    path = tmp_path / "host.sqlite"
    run_sql(
        path,
        SCHEMA.split("CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL")[0] + "CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME "
        "(start INTEGER, end INTEGER, correlationId INTEGER, nameId INTEGER);\n"
        "INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES (0, 10, 1, 1);",
    )
    result = analyze(load(path))
    assert result.primary is None
    assert result.to_dict()["gpu_active_pct"] is None
