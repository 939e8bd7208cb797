"""The Chrome/Kineto trace loader: torch.profiler's ``.json``/``.json.gz`` into a :class:`Trace`."""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterator
from math import isfinite
from typing import Any, Protocol, TypeGuard, cast

import msgspec

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

_TIME_UNITS = {"us": 1.0, "ns": 1e-3}


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


MAX_TRACE_BYTES = 4 * 2**30  # JSON text; a million-event trace is about 320 MB
# Compressed bytes per decompression call: each call's output (about ten times as much) stays
# in the CPU's cache for whoever reads it next, and the output limit is checked often.
_GUNZIP_PIECE = 64 * 2**10


class Inflater(Protocol):
    """zlib, or a module with zlib's decompressobj (isal.isal_zlib)."""

    error: type[Exception]

    def decompressobj(self, wbits: int) -> Any: ...


ZLIB = cast(Inflater, zlib)


def gunzip_chunks(raw: bytes, name: str, limit: int = MAX_TRACE_BYTES, inflater: Inflater = ZLIB) -> Iterator[bytes]:
    """The text of every gzip member of ``raw``, in pieces, refusing more than ``limit`` bytes
    of output (a few MB of gzip can expand to many GB)."""
    view = memoryview(raw)
    at = total = 0
    try:
        while at < len(view):
            member = inflater.decompressobj(wbits=31)
            while at < len(view) and not member.eof:
                piece = view[at : at + _GUNZIP_PIECE]
                at += len(piece)
                out = member.decompress(piece)
                total += len(out)
                if total > limit:
                    raise TraceFormatError(name, f"decompresses to more than {limit} bytes: not read")
                if out:
                    yield out
            if not member.eof:
                raise TraceFormatError(name, "corrupt or truncated gzip data (the stream ends early)")
            at -= len(member.unused_data)  # where the next member starts, if any
            while at < len(view) and view[at] == 0:  # padding between members
                at += 1
    except inflater.error as exc:
        raise TraceFormatError(name, f"corrupt or truncated gzip data ({exc})") from None


def gunzip(raw: bytes, name: str, limit: int = MAX_TRACE_BYTES) -> bytes:
    """Decompress every gzip member of ``raw`` (see :func:`gunzip_chunks`)."""
    return b"".join(gunzip_chunks(raw, name, limit))


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
        trace = Trace(
            source, device_names=device_names(document.deviceProperties), rank=trace_rank(document.distributedInfo)
        )
    elif isinstance(document, list):
        events, trace = document, Trace(source)
    else:
        raise TraceFormatError(source, f"top level is {_json_type(document)}, expected an object")
    with collector_paused():
        _read_events(trace, events, scale)
    return trace


def time_scale(time_unit: str) -> float:
    """Microseconds per unit of a trace's ts and dur."""
    if time_unit not in _TIME_UNITS:
        raise ValueError(f"time_unit must be one of {sorted(_TIME_UNITS)}, not {time_unit!r}")
    return _TIME_UNITS[time_unit]


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
            ((ts_type is float and isfinite(ts)) or (ts_type is int and -_INT_LIMIT < ts < _INT_LIMIT))
            and ((dur_type is float and isfinite(dur)) or (dur_type is int and -_INT_LIMIT < dur < _INT_LIMIT))
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
            flop_op = _flop_op(name, args)
            if flop_op is not None:
                trace.flop_ops.append(flop_op)
    if step_names:
        trace.steps = len(step_names)


_TIME_LIMIT_US = 1e15  # about 32 years either side of the first event: past it, a timestamp is corrupt
_INT_LIMIT = 2**63  # no real timestamp, duration or count reaches it; beyond float range ints would overflow


def _is_number(value: Any) -> TypeGuard[int | float]:
    kind = type(value)
    if kind is int:
        return bool(-_INT_LIMIT < value < _INT_LIMIT)
    return kind is float and math.isfinite(value)


def device_names(props: Any) -> dict[int, str]:
    """GPU names by device id, from a trace's ``deviceProperties``."""
    names: dict[int, str] = {}
    if isinstance(props, list):
        for entry in props:
            if isinstance(entry, dict) and type(entry.get("id")) is int and isinstance(entry.get("name"), str):
                names[entry["id"]] = entry["name"]
    return names


def trace_rank(info: Any) -> int | None:
    """The rank in a trace's ``distributedInfo``, if it names one."""
    if isinstance(info, dict) and type(info.get("rank")) is int:
        return int(info["rank"])
    return None


# Bytes per element of the dtype names the profiler records in "Input type".
_ELEMENT_SIZES = {
    "double": 8,
    "float": 4,
    "c10::Half": 2,
    "c10::BFloat16": 2,
    "long int": 8,
    "int": 4,
    "short int": 2,
    "signed char": 1,
    "unsigned char": 1,
    "bool": 1,
    "c10::Float8_e4m3fn": 1,
    "c10::Float8_e5m2": 1,
    "c10::Float8_e4m3fnuz": 1,
    "c10::Float8_e5m2fnuz": 1,
}

_DIM_LIMIT = 2**31  # a larger tensor dimension is not a real shape

# Operators whose FLOPs follow from their input shapes, counted as torch's FlopCounterMode
# counts them. No listed operator runs inside another listed one, so nothing is counted
# twice: aten::linear, aten::matmul and aten::einsum reach aten::mm or aten::bmm; conv1d/2d/3d
# and the transposed ones all pass through aten::convolution (whose children, _convolution
# and cudnn_convolution, are not listed); the SDPA backends call _flash_attention_forward and
# _efficient_attention_forward, which are not listed either.
_MATMUL_OPS = {"aten::mm": 0, "aten::addmm": 1, "aten::bmm": 0, "aten::baddbmm": 1, "aten::_scaled_mm": 0}
_ATTENTION_OPS = {
    "aten::_scaled_dot_product_flash_attention",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_efficient_attention",
    "aten::_scaled_dot_product_cudnn_attention",
}
_CONV_OP = "aten::convolution"
FLOP_OPERATORS = frozenset({*_MATMUL_OPS, *_ATTENTION_OPS, _CONV_OP})


def flop_op_of(
    name: str, flops: bytes | None, input_dims: bytes | None, input_type: bytes | None, concrete: bytes | None
) -> FlopOp | None:
    """:func:`_flop_op` for an operator whose args' fields are given as JSON text, None where
    absent (the native scanner's way)."""
    args = _Args(
        flops=None if flops is None else msgspec.json.decode(flops),
        input_dims=msgspec.Raw(input_dims or b""),
        input_type=msgspec.Raw(input_type or b""),
        concrete=msgspec.Raw(concrete or b""),
    )
    return _flop_op(name, args)


def _flop_op(name: str, args: _Args) -> FlopOp | None:
    """FLOPs and the fewest bytes an operator must move (each input read once,
    the output written once), from the profiler's recorded input shapes and
    dtypes. An explicit ``flops`` argument, where the profiler wrote one, wins."""
    dims, types = _decode_field(args.input_dims), _decode_field(args.input_type)
    shapes: list[list[int]] = []
    sizes: list[int] = []
    if isinstance(dims, list) and isinstance(types, list):
        for shape, dtype in zip(dims, types, strict=False):
            size = _ELEMENT_SIZES.get(dtype, 0) if isinstance(dtype, str) else 0
            if size and isinstance(shape, list) and all(type(d) is int and 0 <= d < _DIM_LIMIT for d in shape):
                shapes.append(shape)
                sizes.append(size)
    computed = _conv_flops(shapes, _decode_field(args.concrete)) if name == _CONV_OP else _shape_flops(name, shapes)
    given: Any = args.flops
    flops = float(given) if _is_number(given) and given > 0 else computed[0] if computed else 0.0
    if flops <= 0:
        return None
    if not shapes:
        return FlopOp(name, flops, 0.0, 0)
    out_numel = computed[1] if computed else max(math.prod(s) for s in shapes)
    moved = sum(math.prod(s) * size for s, size in zip(shapes, sizes, strict=True)) + out_numel * sizes[0]
    return FlopOp(name, flops, float(moved), sizes[0])


def _decode_field(raw: msgspec.Raw) -> Any:
    """A deferred field (empty when absent); valid JSON, since the document around it decoded,
    but it may hold a number beyond double (a shape of 1e400): then no shapes."""
    try:
        return msgspec.json.decode(raw) if len(raw) else None
    except msgspec.DecodeError:
        return None


def _conv_flops(shapes: list[list[int]], concrete: Any) -> tuple[float, int] | None:
    """(FLOPs, output elements) of aten::convolution(input, weight, bias, stride, padding,
    dilation, transposed, output_padding, groups): 2 x batch x positions x weight elements,
    positions being the output's (the input's, transposed), as FlopCounterMode counts."""
    if len(shapes) < 2 or not isinstance(concrete, list) or len(concrete) < 9:
        return None
    x, w = shapes[0], shapes[1]
    spatial = len(x) - 2
    if spatial < 1 or len(w) != len(x):
        return None
    stride, padding, dilation, output_padding = (_int_list(concrete[i], spatial) for i in (3, 4, 5, 7))
    groups = _int_list(concrete[8], 1)
    if stride is None or padding is None or dilation is None or output_padding is None or groups is None:
        return None
    transposed = str(concrete[6]).strip().lower() in ("true", "1")
    kernel = w[2:]
    if transposed:
        out = [
            (i - 1) * s - 2 * p + d * (k - 1) + o + 1
            for i, s, p, d, k, o in zip(x[2:], stride, padding, dilation, kernel, output_padding, strict=True)
        ]
        positions, channels = math.prod(x[2:]), w[1] * groups[0]
    else:
        out = [
            (i + 2 * p - d * (k - 1) - 1) // s + 1
            for i, s, p, d, k in zip(x[2:], stride, padding, dilation, kernel, strict=True)
        ]
        positions, channels = math.prod(out), w[0]
    if any(n <= 0 for n in out):
        return None
    return 2.0 * x[0] * positions * math.prod(w), x[0] * channels * math.prod(out)


def _int_list(text: Any, length: int) -> list[int] | None:
    """A Concrete Inputs entry ("[1, 1]" or "2") as ``length`` positive-or-zero ints, else None."""
    try:
        value = msgspec.json.decode(text) if isinstance(text, str) else text
    except msgspec.DecodeError:
        return None
    values = value if isinstance(value, list) else [value]
    if len(values) == 1 and length > 1:
        values = values * length
    if len(values) != length or not all(type(v) is int and 0 <= v < _DIM_LIMIT for v in values):
        return None
    return values


def _shape_flops(name: str, shapes: list[list[int]]) -> tuple[float, int] | None:
    """(FLOPs, output elements) of a matrix product or attention, else None."""
    if name in _MATMUL_OPS:
        operands = shapes[_MATMUL_OPS[name] :][:2]
        if len(operands) == 2 and len(operands[0]) == len(operands[1]) in (2, 3):
            a, b = operands
            batch = a[0] if len(a) == 3 else 1
            m, k, n = a[-2], a[-1], b[-1]
            return 2.0 * batch * m * k * n, batch * m * n
    elif name in _ATTENTION_OPS and len(shapes) >= 3 and all(len(s) == 4 for s in shapes[:3]):
        (nb, heads, sq, d), (_, _, sk, _), (_, _, _, dv) = shapes[:3]
        return 2.0 * nb * heads * sq * sk * (d + dv), nb * heads * sq * dv
    return None
