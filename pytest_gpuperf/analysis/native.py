"""Reading a Chrome/Kineto trace file with the native scanner (``_scan.c``), streamed.

The file's text is decompressed and scanned in pieces, so the whole text is never held:
peak memory is the :class:`Trace` and a piece. The scanner reads exactly what
``chrome.decode`` and ``chrome.from_chrome`` read, and declines everything else;
:func:`scan_file` then returns None and the caller reads the file the Python way, which
gives the same result or the error. Not built (no C compiler when the package was
installed) or turned off with ``GPUPERF_PURE_PYTHON=1``: always None.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator
from queue import Empty, Queue
from types import ModuleType
from typing import TYPE_CHECKING, cast

from pytest_gpuperf.analysis import kineto
from pytest_gpuperf.analysis.trace import (
    KERNEL,
    MEMCPY,
    MEMSET,
    ApiCall,
    DeviceOp,
    FlopOp,
    Trace,
    TraceFormatError,
    api_call_kind,
    collector_paused,
)

if TYPE_CHECKING:
    from pytest_gpuperf.analysis._scan import Scanner

_scan: ModuleType | None
try:
    from pytest_gpuperf.analysis import _scan
except ImportError:  # not built: every trace is read the Python way
    _scan = None

_inflater: kineto.Inflater
try:  # about three times zlib's speed; its errors are worded apart, so a failure declines
    from isal import isal_zlib

    _inflater = cast(kineto.Inflater, isal_zlib)
except ImportError:
    _inflater = kineto.ZLIB

PURE_PYTHON_ENV = "GPUPERF_PURE_PYTHON"
_READ_PIECE = 2**20  # bytes of an uncompressed file read at a time


class _Declined(Exception):
    """The file is left to the Python reader."""


def enabled() -> bool:
    """Whether traces are read by the native scanner (built, and not turned off)."""
    return _scan is not None and os.environ.get(PURE_PYTHON_ENV, "") in ("", "0")


def scan_file(name: str, time_unit: str = "us") -> Trace | None:
    """The trace in the Chrome/Kineto file named ``name``, or None where the native scanner
    is not enabled or does not read this document."""
    kineto.time_scale(time_unit)  # a bad unit is an error whichever way the file is read
    if not enabled():
        return None
    return scan_pieces(_text(name), name, time_unit)


def scan_pieces(pieces: Iterable[bytes], name: str, time_unit: str = "us") -> Trace | None:
    """The trace whose JSON text is ``pieces`` (cut anywhere), or None where the scanner is
    not built or does not read this document."""
    scale = kineto.time_scale(time_unit)
    if _scan is None:
        return None
    trace = Trace(name)
    scanner = _scan.Scanner(
        trace, scale, DeviceOp, ApiCall, (KERNEL, MEMCPY, MEMSET), api_call_kind, kineto.FLOP_OPERATORS
    )
    try:
        with collector_paused():
            _feed(scanner, pieces)
            _finish(trace, scanner)
    except (_scan.Declined, _Declined, ValueError):  # ValueError: JSON the decoder would reject
        return None
    return trace


_JOIN = 64 * 2**10  # bytes of the next piece joined to an item the last one cut off


def _feed(scanner: Scanner, pieces: Iterable[bytes]) -> None:
    pending = b""  # the start of an item (an event or a top-level member) the last piece cut off
    retry_at = 0  # an item longer than a join: the size at which to scan it again (doubling: linear time)
    for piece in pieces:
        used = 0
        if pending:
            if len(pending) + len(piece) < retry_at:
                pending += piece
                continue
            # Finish the cut item on a short join, then scan the piece itself from where it ends:
            # joining whole pieces would copy the whole text once more.
            joined = pending + piece[:_JOIN]
            consumed = scanner.feed(joined)
            if consumed < len(pending):  # the item runs past the join: hold all of it
                pending = pending[consumed:] + piece
                retry_at = 2 * len(pending)
                continue
            used = consumed - len(pending)
        used += scanner.feed(memoryview(piece)[used:])
        pending = piece[used:]
    if pending:
        scanner.feed(pending)  # held for a retry, or cut off by the end: the scanner says which
    scanner.finish()


def _finish(trace: Trace, scanner: Scanner) -> None:
    """What the scanner hands back undecoded: the document's own fields, the FLOP operators."""
    if scanner.device_properties is not None:
        trace.device_names = kineto.device_names(kineto.json_value(scanner.device_properties))
    if scanner.distributed_info is not None:
        trace.rank = kineto.trace_rank(kineto.json_value(scanner.distributed_info))
    counted: dict[tuple[str, bytes | None, bytes | None, bytes | None, bytes | None], FlopOp | None] = {}
    for candidate in scanner.flop_candidates:  # the same operator on the same shapes, step after step
        if candidate in counted:
            flop_op = counted[candidate]
        else:
            name, flops, input_dims, input_type, concrete = candidate
            flops_value = None if flops is None else kineto.json_value(flops)
            flop_op = counted[candidate] = kineto.flop_op(name, flops_value, input_dims, input_type, concrete)
        if flop_op is not None:
            trace.flop_ops.append(flop_op)
    if scanner.step_names:
        trace.steps = len(scanner.step_names)


def _text(name: str) -> Iterator[bytes]:
    """The file's JSON text in pieces, decompressed where it is gzip."""
    try:
        with open(name, "rb") as file:
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
        yield from _in_background(kineto.gunzip_chunks(raw, name, inflater=_inflater))
    except TraceFormatError:
        if _inflater is kineto.ZLIB:
            raise
        raise _Declined from None  # zlib, on the Python path, words the error


_DONE = object()
_QUEUED_PIECES = 16


def _in_background(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """``pieces``, made by a thread while the caller consumes them: gzip releases the GIL while
    it inflates, and the scanner while it parses, so on a second core the two run side by side.
    The producer's error is raised here."""
    queue: Queue[object] = Queue(maxsize=_QUEUED_PIECES)
    stop = threading.Event()

    def produce() -> None:
        try:
            for piece in pieces:
                if stop.is_set():
                    return
                queue.put(piece)
            queue.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            queue.put(exc)

    thread = threading.Thread(target=produce, name="gpuperf-gunzip", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield cast(bytes, item)
    finally:
        stop.set()
        while thread.is_alive():  # a producer blocked on a full queue must see the stop
            with contextlib.suppress(Empty):
                queue.get(timeout=0.05)
        thread.join()
