"""``load()``: a trace file of any format gpuperf reads, chosen by its content."""

from __future__ import annotations

import os
from typing import Any

from pytest_gpuperf.analysis.kineto import MAX_TRACE_BYTES, gunzip
from pytest_gpuperf.analysis.native import scan_file
from pytest_gpuperf.analysis.trace import Trace, TraceFormatError

_SQLITE = b"SQLite format 3\x00"


def load(source: str | os.PathLike[str] | dict[str, Any], *, time_unit: str = "us") -> Trace:
    """Load a Kineto/Chrome trace (path to ``.json`` or ``.json.gz``, or a parsed
    dict) or an Nsight Systems SQLite export (path), chosen by content."""
    if isinstance(source, dict):
        import msgspec

        from pytest_gpuperf.analysis.chrome import decode, from_chrome

        # Through the same decoder as a file: one path, one set of checks.
        try:
            raw = msgspec.json.encode(source)
        except (TypeError, ValueError, msgspec.MsgspecError) as exc:
            raise TraceFormatError("<dict>", f"not JSON data: {exc}") from None
        return from_chrome(decode(raw, "<dict>"), "<dict>", time_unit=time_unit)
    name = shown_name(source)
    try:
        return _load_file(name, time_unit)
    except (UnicodeDecodeError, OverflowError, RecursionError, MemoryError) as exc:
        # Data no check above foresaw (invalid UTF-8 in a name, a number beyond float range):
        # still the one documented error, naming the file.
        raise TraceFormatError(name, f"unreadable trace data: {type(exc).__name__}: {str(exc)[:200]}") from None


def shown_name(path: str | os.PathLike[str]) -> str:
    """The path as pathlib writes it ("./a//b/" as "a/b"), the name a trace has always had;
    pathlib is imported only for a path not already so written (``gpuperf analyze`` runs a
    process per trace: its imports are a good part of its time)."""
    name = os.fspath(path)
    written = name and "//" not in name and "/./" not in name and not name.startswith("./")
    if os.sep == "/" and written and not name.endswith(("/", "/.")):
        return name
    from pathlib import Path

    return str(Path(name))


def _load_file(name: str, time_unit: str) -> Trace:
    try:
        size = os.stat(name).st_size
        if size > MAX_TRACE_BYTES:
            raise TraceFormatError(name, f"{size} bytes: larger than gpuperf reads ({MAX_TRACE_BYTES} bytes)")
        with open(name, "rb") as file:
            head = file.read(len(_SQLITE))
    except OSError as exc:
        raise TraceFormatError(name, f"cannot read file: {exc.strerror or exc}") from None
    if head == _SQLITE:
        from pytest_gpuperf.analysis.nsys import load_nsys  # sqlite3 only when needed

        return load_nsys(name)
    scanned = scan_file(name, time_unit)
    if scanned is not None:
        return scanned
    # The Python reader (msgspec), imported only where the scanner is not built or declined.
    from pytest_gpuperf.analysis.chrome import decode, from_chrome

    try:
        with open(name, "rb") as file:
            raw = file.read()
    except OSError as exc:
        raise TraceFormatError(name, f"cannot read file: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gunzip(raw, name)
    document = decode(raw, name)
    del raw  # the text can go before the events are read: peak memory is the decoded document
    return from_chrome(document, name, time_unit=time_unit)
