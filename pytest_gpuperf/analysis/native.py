"""Reading a Chrome/Kineto trace file with the native scanner (``_scan.c``), streamed.

The file's text is decompressed and scanned in pieces, so the whole text is never held:
peak memory is the :class:`Trace` and a piece. The scanner reads exactly what
``chrome.decode`` and ``chrome.from_chrome`` read, and declines everything else;
:func:`scan_file` then returns None and the caller reads the file the Python way, which
gives the same result or the error. Not built (no C compiler when the package was
installed) or turned off with ``GPUPERF_PURE_PYTHON=1``: always None.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import cast

import msgspec

from pytest_gpuperf.analysis import chrome
from pytest_gpuperf.analysis.trace import (
    KERNEL,
    MEMCPY,
    MEMSET,
    ApiCall,
    DeviceOp,
    Trace,
    TraceFormatError,
    api_call_kind,
    collector_paused,
)

_scan: ModuleType | None
try:
    from pytest_gpuperf.analysis import _scan
except ImportError:  # not built: every trace is read the Python way
    _scan = None

_inflater: chrome.Inflater
try:  # about three times zlib's speed; its errors are worded apart, so a failure declines
    from isal import isal_zlib

    _inflater = cast(chrome.Inflater, isal_zlib)
except ImportError:
    _inflater = cast(chrome.Inflater, zlib)

PURE_PYTHON_ENV = "GPUPERF_PURE_PYTHON"
_READ_PIECE = 2**20  # bytes of an uncompressed file read at a time


class _Declined(Exception):
    """The file is left to the Python reader."""


def enabled() -> bool:
    """Whether traces are read by the native scanner (built, and not turned off)."""
    return _scan is not None and os.environ.get(PURE_PYTHON_ENV, "") in ("", "0")


def scan_file(path: Path, name: str, time_unit: str = "us") -> Trace | None:
    """The trace in the Chrome/Kineto file at ``path``, or None where the native scanner
    is not enabled or does not read this document."""
    scale = chrome.time_scale(time_unit)
    if _scan is None or not enabled():
        return None
    trace = Trace(name)
    scanner = _scan.Scanner(
        trace, scale, DeviceOp, ApiCall, (KERNEL, MEMCPY, MEMSET), api_call_kind, chrome.FLOP_OPERATORS
    )
    try:
        with collector_paused():
            _feed(scanner, _text(path, name))
            _finish(trace, scanner)
    except (_scan.Declined, _Declined, msgspec.MsgspecError):
        return None
    return trace


_JOIN = 64 * 2**10  # bytes of the next piece joined to an event the last one cut off


def _feed(scanner: _scan.Scanner, pieces: Iterator[bytes]) -> None:
    pending = b""  # the start of an event (or top-level member) the last piece cut off
    for piece in pieces:
        used = 0
        if pending:
            # Finish the cut event on a short join, then scan the piece itself from where it ends:
            # joining whole pieces would copy the whole text once more.
            joined = pending + piece[:_JOIN]
            used = scanner.feed(joined) - len(pending)
            if used < 0:  # longer than the join: join it all
                pending += piece
                continue
        used += scanner.feed(memoryview(piece)[used:])
        pending = piece[used:]
    scanner.finish()


def _finish(trace: Trace, scanner: _scan.Scanner) -> None:
    """What the scanner hands back undecoded: the document's own fields, the FLOP operators."""
    if scanner.device_properties is not None:
        trace.device_names = chrome.device_names(msgspec.json.decode(scanner.device_properties))
    if scanner.distributed_info is not None:
        trace.rank = chrome.trace_rank(msgspec.json.decode(scanner.distributed_info))
    for op_name, args_json in scanner.flop_candidates:
        flop_op = chrome.flop_op_of(op_name, args_json)
        if flop_op is not None:
            trace.flop_ops.append(flop_op)
    if scanner.step_names:
        trace.steps = len(scanner.step_names)


def _text(path: Path, name: str) -> Iterator[bytes]:
    """The file's JSON text in pieces, decompressed where it is gzip."""
    try:
        with path.open("rb") as file:
            head = file.read(_READ_PIECE)
            if head[:2] == b"\x1f\x8b":
                raw = head + file.read()
            else:
                while head:
                    yield head
                    head = file.read(_READ_PIECE)
                return
    except OSError as exc:
        raise TraceFormatError(name, f"cannot read file: {exc.strerror or exc}") from None
    try:
        yield from chrome.gunzip_chunks(raw, name, inflater=_inflater)
    except TraceFormatError:
        if _inflater is zlib:
            raise
        raise _Declined from None  # zlib, on the Python path, words the error
