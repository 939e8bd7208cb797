"""The Python reader of Chrome/Kineto traces: torch.profiler's ``.json``/``.json.gz`` decoded
with msgspec into a :class:`Trace`. The native scanner (``native.py``) reads the same documents
the same way, faster, and hands this reader what it does not take; what the fields mean for
both is in ``kineto.py``."""

from __future__ import annotations

import re
from math import isfinite
from typing import Any

import msgspec

from pytest_gpuperf.analysis.kineto import FLOP_OPERATORS, INT_LIMIT, device_names, flop_op, time_scale, trace_rank
from pytest_gpuperf.analysis.trace import (
    KERNEL,
    MEMCPY,
    MEMSET,
    DeviceOp,
    FlopOp,
    Trace,
    TraceFormatError,
    collector_paused,
)

# What each Kineto category is to the analysis, by current spelling and the
# capitalised ones of older releases (anything else is looked up lower-cased).
_OP, _API, _ANNOTATION = "op", "api", "annotation"
_DEVICE_KINDS = frozenset({KERNEL, MEMCPY, MEMSET})
_ROLES = {
    "kernel": KERNEL,
    "gpu_memcpy": MEMCPY,
    "gpu_memset": MEMSET,
    "memcpy": MEMCPY,
    "memset": MEMSET,
    "cpu_op": _OP,
    "operator": _OP,
    "cuda_runtime": _API,
    "runtime": _API,
    "cuda_driver": _API,
    "driver": _API,
    "user_annotation": _ANNOTATION,  # only ProfilerStep# annotations are read, to count steps
}


# The decoding schema names only the fields the analysis reads, so the decoder
# skips everything else (operator inputs, strides, stacks) without building
# Python objects for it: that is most of a trace's bytes and most of the time.
# Every position also accepts any other JSON value, so no valid JSON fails to
# decode; the event reader below judges what it finds.
class _Args(msgspec.Struct, gc=False):  # no cycles: the collector need not track them
    correlation: Any = None
    device: Any = None
    stream: Any = None
    flops: Any = None
    # Kept undecoded: only the few matmul/attention operators need their shapes.
    input_dims: msgspec.Raw = msgspec.field(default=msgspec.Raw(), name="Input Dims")
    input_type: msgspec.Raw = msgspec.field(default=msgspec.Raw(), name="Input type")
    concrete: msgspec.Raw = msgspec.field(default=msgspec.Raw(), name="Concrete Inputs")  # conv strides, padding


_Scalar = str | int | float | bool | None


class _Event(msgspec.Struct, gc=False):  # no cycles: the collector need not track them
    ph: Any = None
    cat: Any = None
    name: Any = None
    ts: Any = None
    dur: Any = None
    pid: Any = None
    tid: Any = None
    args: _Args | list[Any] | _Scalar = None


_Events = list[_Event | list[Any] | _Scalar]


class _Trace(msgspec.Struct, gc=False):  # no cycles: the collector need not track them
    traceEvents: _Events | dict[str, Any] | _Scalar = None
    deviceProperties: Any = None
    distributedInfo: Any = None


_NO_ARGS = _Args()
_Document = _Trace | _Events | _Scalar
_DECODER = msgspec.json.Decoder(_Document)
_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def decode(raw: bytes, name: str) -> Any:
    if not raw.strip():
        raise TraceFormatError(name, "file is empty")
    try:
        with collector_paused():
            return _DECODER.decode(raw)
    except msgspec.MsgspecError as exc:
        raise TraceFormatError(name, _describe_json_error(str(exc), raw)) from None
    except RecursionError:
        raise TraceFormatError(name, "JSON nested too deeply") from None


def _describe_json_error(message: str, raw: bytes) -> str:
    """msgspec says "JSON is malformed: invalid character (byte 1234)": name the line and column."""
    if "truncated" in message:
        return "not valid JSON: the file ends early (truncated?)"
    where = re.search(r"\(byte (\d+)\)", message)
    detail = re.sub(r"^JSON is malformed: |\s*\(byte \d+\)", "", message)
    if where is None:
        return f"not valid JSON: {detail}"
    offset = int(where.group(1))
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return f"not valid JSON at line {line}, column {column}: {detail}"


def from_chrome(document: Any, source: str, *, time_unit: str = "us") -> Trace:
    """Build a :class:`Trace` from a decoded Chrome trace (object or event array)."""
    scale = time_scale(time_unit)
    if isinstance(document, _Trace):
        events = document.traceEvents
        if not isinstance(events, list):
            raise TraceFormatError(source, "no 'traceEvents' array: not a Chrome/Kineto trace")
        trace = Trace(source)
        trace.device_names = device_names(document.deviceProperties)
        trace.rank = trace_rank(document.distributedInfo)
    elif isinstance(document, list):
        events, trace = document, Trace(source)
    else:
        raise TraceFormatError(source, f"top level is {_json_type(document)}, expected an object")
    with collector_paused():
        _read_events(trace, events, scale)
    return trace


def _read_events(trace: Trace, events: list[Any], scale: float) -> None:
    source = trace.source
    base: Any = None
    step_names: set[str] = set()
    device_ops, host, add_api_call = trace.device_ops, trace.host, trace.add_api_call
    ops, op_names = trace.ops, trace.op_names
    roles, no_args = _ROLES, _NO_ARGS
    for index, ev in enumerate(events):
        if type(ev) is not _Event:
            raise TraceFormatError(source, f"event {index} is {_json_type(ev)}, expected an object")
        cat = ev.cat
        if ev.ph != "X" or type(cat) is not str:
            continue
        role = roles.get(cat) or roles.get(cat.lower())
        if role is None:
            continue
        name: Any = ev.name
        # Profiler steps are annotations (older releases wrote them as operators);
        # other annotations (record_function ranges) are not host work by the definition.
        is_step = (role is _ANNOTATION or role is _OP) and type(name) is str and name.startswith("ProfilerStep#")
        if role is _ANNOTATION and not is_step:
            continue
        ts, dur = ev.ts, ev.dur
        # _is_number, inlined: this loop runs once per event
        ts_type, dur_type = type(ts), type(dur)
        if not (
            ((ts_type is float and isfinite(ts)) or (ts_type is int and -INT_LIMIT < ts < INT_LIMIT))
            and ((dur_type is float and isfinite(dur)) or (dur_type is int and -INT_LIMIT < dur < INT_LIMIT))
        ):
            raise TraceFormatError(source, f"event {index} ({cat}) has no finite numeric 'ts' and 'dur'")
        if dur < 0:
            raise TraceFormatError(source, f"event {index} ({cat}) has a negative duration {dur}")
        if base is None:
            base = ts
        start = float(ts - base) * scale
        end = start + float(dur) * scale
        if not -_TIME_LIMIT_US < start <= end < _TIME_LIMIT_US:  # one chained test: NaN and inf fail it too
            raise TraceFormatError(source, f"event {index} ({cat}) lies {start:.3g} us from the first: out of range")
        if is_step:
            step_names.add(name)
            trace.step_spans.append((start, end))
            continue
        if type(name) is not str:
            raise TraceFormatError(source, f"event {index} ({cat}) has no 'name' string")
        args = ev.args if type(ev.args) is _Args else no_args
        correlation = args.correlation
        if type(correlation) is not int or correlation == 0:  # CUPTI's 0 means "no correlation"
            correlation = None
        device_kind = role if role in _DEVICE_KINDS else None
        if device_kind is not None:
            device = args.device if args.device is not None else ev.pid
            stream = args.stream if args.stream is not None else ev.tid
            device_ops.append(
                DeviceOp(
                    start,
                    end,
                    device_kind,
                    name,
                    device if type(device) is int else 0,
                    stream if type(stream) is int else 0,
                    correlation,
                )
            )
            continue
        if role is _API:
            add_api_call(name, start, end, correlation)
            continue
        host.append((start, end))  # an operator
        ops.append((start, end))
        op_names.append(name)
        if name in FLOP_OPERATORS or args.flops is not None:
            flop_op = _flop_op_of(name, args)
            if flop_op is not None:
                trace.flop_ops.append(flop_op)
    if step_names:
        trace.steps = len(step_names)


_TIME_LIMIT_US = 1e15  # about 32 years either side of the first event: past it, a timestamp is corrupt


def _flop_op_of(name: str, args: _Args) -> FlopOp | None:
    return flop_op(name, args.flops, _text(args.input_dims), _text(args.input_type), _text(args.concrete))


def _text(raw: msgspec.Raw) -> bytes | None:
    return bytes(raw) if len(raw) else None
