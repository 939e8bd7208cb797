"""What the fields of a Chrome/Kineto trace mean, for both of gpuperf's readers of it: the
Python one (``chrome.py``, msgspec) and the native scanner (``native.py``, ``_scan.c``).

Decompression, time units, the document's device names and rank, and the FLOPs of the
operators that carry them: everything here is shared, so the two readers cannot differ in it.
No msgspec: the native path does not pay for importing it.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterator
from typing import Any, Protocol, TypeGuard, cast

from pytest_gpuperf.analysis.trace import FlopOp, TraceFormatError

INT_LIMIT = 2**63  # no real timestamp, duration or count reaches it; beyond float range ints would overflow
_TIME_UNITS = {"us": 1.0, "ns": 1e-3}


MAX_TRACE_BYTES = 4 * 2**30  # JSON text; a million-event trace is about 320 MB
# Compressed bytes per decompression call: each call's output (about ten times as much) stays
# in the CPU's cache for whoever reads it next, and the output limit is checked often.
_GUNZIP_PIECE = 64 * 2**10
_GUNZIP_OUT = 16 * _GUNZIP_PIECE  # the most one call may inflate: real traces give 8-25x a piece


class Inflater(Protocol):
    """zlib, or a module with zlib's decompressobj (isal.isal_zlib)."""

    error: type[Exception]

    def decompressobj(self, wbits: int) -> Any: ...


ZLIB = cast(Inflater, zlib)


# Real traces inflate 8-25x (the repository's, torch.profiler's gzip); a gzip bomb about 1000x.
# Past the floor, output beyond this multiple of the file's size is refused while streaming, so
# a bomb costs what a real trace of its size would, not gigabytes.
MAX_INFLATION = 100
INFLATION_FLOOR = 64 * 2**20


def gunzip_chunks(raw: bytes, name: str, limit: int = MAX_TRACE_BYTES, inflater: Inflater = ZLIB) -> Iterator[bytes]:
    """The text of every gzip member of ``raw``, in pieces, refusing more than ``limit`` bytes
    of output, or more than MAX_INFLATION times the file's size (a few MB of gzip can expand to
    many GB)."""
    view = memoryview(raw)
    at = total = 0
    inflated = max(INFLATION_FLOOR, MAX_INFLATION * len(raw))
    try:
        while at < len(view):
            member = inflater.decompressobj(wbits=31)
            while at < len(view) and not member.eof:
                piece: bytes | memoryview = view[at : at + _GUNZIP_PIECE]
                at += len(piece)
                while True:  # each call's output bounded: a bomb's piece inflates a thousandfold
                    out = member.decompress(piece, _GUNZIP_OUT)
                    total += len(out)
                    if total > limit:
                        raise TraceFormatError(name, f"decompresses to more than {limit} bytes: not read")
                    if total > inflated:
                        raise TraceFormatError(
                            name,
                            f"decompresses to more than {MAX_INFLATION} times its {len(raw)} bytes (real traces: "
                            "8-25 times): not read, as a gzip bomb would not be",
                        )
                    if out:
                        yield out
                    piece = member.unconsumed_tail
                    if not piece and len(out) < _GUNZIP_OUT:
                        break
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


def time_scale(time_unit: str) -> float:
    """Microseconds per unit of a trace's ts and dur."""
    if time_unit not in _TIME_UNITS:
        raise ValueError(f"time_unit must be one of {sorted(_TIME_UNITS)}, not {time_unit!r}")
    return _TIME_UNITS[time_unit]


def is_number(value: Any) -> TypeGuard[int | float]:
    """A finite float or an int that fits 64 bits (ints beyond float range would overflow)."""
    kind = type(value)
    if kind is int:
        return bool(-INT_LIMIT < value < INT_LIMIT)
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


def flop_op(
    name: str, flops: Any, input_dims: bytes | None, input_type: bytes | None, concrete: bytes | None
) -> FlopOp | None:
    """FLOPs and the fewest bytes an operator must move (each input read once, the output
    written once), from the profiler's recorded input shapes and dtypes. An explicit ``flops``
    argument (decoded), where the profiler wrote one, wins. ``input_dims``, ``input_type`` and
    ``concrete`` (Concrete Inputs): the args' fields as JSON text, None where absent; only
    these few operators need them, so both readers keep them undecoded until here."""
    dims, types = _deferred(input_dims), _deferred(input_type)
    shapes: list[list[int]] = []
    sizes: list[int] = []
    if isinstance(dims, list) and isinstance(types, list):
        for shape, dtype in zip(dims, types, strict=False):
            size = _ELEMENT_SIZES.get(dtype, 0) if isinstance(dtype, str) else 0
            if size and isinstance(shape, list) and all(type(d) is int and 0 <= d < _DIM_LIMIT for d in shape):
                shapes.append(shape)
                sizes.append(size)
    computed = _conv_flops(shapes, _deferred(concrete)) if name == _CONV_OP else _shape_flops(name, shapes)
    counted = float(flops) if is_number(flops) and flops > 0 else computed[0] if computed else 0.0
    if counted <= 0:
        return None
    if not shapes:
        return FlopOp(name, counted, 0.0, 0)
    out_numel = computed[1] if computed else max(math.prod(s) for s in shapes)
    moved = sum(math.prod(s) * size for s, size in zip(shapes, sizes, strict=True)) + out_numel * sizes[0]
    return FlopOp(name, counted, float(moved), sizes[0])


def _deferred(text: bytes | None) -> Any:
    """A deferred field's value; None where absent or where it holds a number beyond double
    (a shape of 1e400: no shapes)."""
    try:
        return json_value(text) if text else None
    except ValueError:
        return None


def json_value(text: str | bytes) -> Any:
    """JSON text as Python values, as msgspec decodes it where a field is typed Any: a float
    beyond double is an error (ValueError), not infinity."""
    return json.loads(text, parse_float=_finite_float)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text}")
    return value


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
        value = json_value(text) if isinstance(text, str) else text
    except ValueError:
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
