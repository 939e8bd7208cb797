"""Load an Nsight Systems SQLite export (``nsys export --type sqlite``) into a Trace.

Tables read: CUPTI_ACTIVITY_KIND_KERNEL, _MEMCPY, _MEMSET (device operations),
CUPTI_ACTIVITY_KIND_RUNTIME (host calls), StringIds (names). Times there are
integer nanoseconds; they are rebased to the first event in integer arithmetic
and then converted to float microseconds like every other trace.
An export has no operator (cpu_op) events, so its host intervals are the CUDA
runtime calls alone.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pytest_gpuperf.analysis.trace import KERNEL, MEMCPY, MEMSET, DeviceOp, Trace, TraceFormatError

_DEVICE_TABLES = (
    ("CUPTI_ACTIVITY_KIND_KERNEL", KERNEL),
    ("CUPTI_ACTIVITY_KIND_MEMCPY", MEMCPY),
    ("CUPTI_ACTIVITY_KIND_MEMSET", MEMSET),
)
_RUNTIME = "CUPTI_ACTIVITY_KIND_RUNTIME"


def load_nsys(path: str | Path) -> Trace:
    source = str(path)
    try:
        # Quoted: a '#' or '?' in the file name would otherwise end the path inside the URI.
        conn = sqlite3.connect(f"file:{quote(str(Path(path).resolve()))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise TraceFormatError(source, f"cannot open SQLite file: {exc}") from None
    try:
        return _read(conn, source)
    except TraceFormatError:
        raise
    except (sqlite3.Error, TypeError, ValueError, OverflowError) as exc:  # a damaged schema or odd values
        raise TraceFormatError(source, f"unreadable Nsight Systems export: {exc}") from None
    finally:
        conn.close()


def _read(conn: sqlite3.Connection, source: str) -> Trace:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    has_activity = _RUNTIME in tables or any(t in tables for t, _ in _DEVICE_TABLES)
    if "StringIds" not in tables or not has_activity:
        raise TraceFormatError(source, "SQLite file has no CUPTI_ACTIVITY_KIND_* and StringIds tables")
    strings = {key: _text(value) for key, value in conn.execute("SELECT id, value FROM StringIds")}
    rows: list[tuple[str, tuple[Any, ...]]] = []
    for table, kind in _DEVICE_TABLES:
        if table not in tables:
            continue
        columns = _columns(conn, table)
        name_col = "demangledName" if kind == KERNEL and "demangledName" in columns else "shortName"
        name_sql = name_col if kind == KERNEL else "NULL"
        for row in conn.execute(
            f"SELECT start, end, deviceId, streamId, correlationId, {name_sql} FROM {table}"  # noqa: S608
        ):
            rows.append((kind, row))
    if _RUNTIME in tables:
        for row in conn.execute(f"SELECT start, end, nameId, correlationId FROM {_RUNTIME}"):  # noqa: S608
            rows.append(("api", row))
    trace = Trace(source=source)
    base = min((row[0] for _, row in rows if type(row[0]) is int), default=0)
    for kind, row in rows:
        start_ns, end_ns = row[0], row[1]
        if type(start_ns) is not int or type(end_ns) is not int:
            raise TraceFormatError(source, f"{kind} row with non-integer start/end: {row[:2]}")
        if end_ns < start_ns:
            raise TraceFormatError(source, f"{kind} row ends before it starts: {row[:2]}")
        start, end = (start_ns - base) / 1000.0, (end_ns - base) / 1000.0
        if kind == "api":  # (start, end, nameId, correlationId); CUPTI's 0 means "no correlation"
            correlation = row[3] if type(row[3]) is int and row[3] != 0 else None
            trace.add_api_call(strings.get(row[2], ""), start, end, correlation)
            continue
        # (start, end, deviceId, streamId, correlationId, name id)
        name = strings.get(row[5], "") if kind == KERNEL else ("Memcpy" if kind == MEMCPY else "Memset")
        correlation = row[4] if type(row[4]) is int and row[4] != 0 else None
        trace.device_ops.append(DeviceOp(start, end, kind, name, _int(row[2]), _int(row[3]), correlation))
    return trace


def _text(value: Any) -> str:
    """A StringIds value as text: NULL is empty, a blob is decoded with replacement."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
