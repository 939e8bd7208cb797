"""What torch.compile did during a test's calls, from torch's own records: the graph breaks
dynamo recorded (with the user code where each happened), its compilations (those of a frame
it had compiled before are recompilations, with the guard that failed), and inductor's count
of graphs it refused to capture as CUDA graphs (with the reason it logged)."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable
from typing import Any

from pytest_gpuperf.measuring.backend import CompileLog

# inductor logs each skipped CUDA-graph capture here (an artifact logger: off unless asked for,
# but a handler on the logger itself still receives its records).
CUDAGRAPH_LOG = "torch._inductor.cudagraph_utils.__cudagraphs"
REASON_WIDTH = 120


def _dynamo() -> Any:
    """torch._dynamo.utils where torch.compile has run in this process; None where it has not
    (nothing was compiled before it was imported, so there is nothing to read)."""
    return sys.modules.get("torch._dynamo.utils")


class _SkipReasons(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.reasons.append(_skip_reason(record.getMessage()))


class DynamoWatch:
    """Reads torch.compile's records from the moment it is made (records made before are not its)."""

    def __init__(self) -> None:
        utils = _dynamo()
        # The records present now, held so that their identities stay unique while the watch lives.
        self._old_breaks = list(utils.graph_break_reasons) if utils else []
        self._old_compiles = list(utils.get_compilation_metrics()) if utils else []
        self._frames = _frames_compiled(utils)
        self._skips = _cudagraph_skips(utils)
        self._handler = _SkipReasons()
        logging.getLogger(CUDAGRAPH_LOG).addHandler(self._handler)

    def log(self) -> CompileLog:
        utils = _dynamo()
        if utils is None:
            return CompileLog()
        old_breaks = {id(r) for r in self._old_breaks}
        breaks = [r for r in utils.graph_break_reasons if id(r) not in old_breaks and r.graph_break]
        old_compiles = {id(m) for m in self._old_compiles}
        compiles = _frame_compiles(m for m in utils.get_compilation_metrics() if id(m) not in old_compiles)
        frames = _frames_compiled(utils)
        skips = _cudagraph_skips(utils)
        # torch._dynamo.reset() during the test clears the counters: count from zero then.
        compiled = frames - self._frames if frames >= self._frames else frames
        skipped = skips - self._skips if skips >= self._skips else skips
        reasons = self._handler.reasons[:skipped] + [""] * max(0, skipped - len(self._handler.reasons))
        return CompileLog(
            compiles=max(compiled, len(compiles)),
            graph_breaks=tuple(_graph_break(r) for r in breaks),
            recompiles=tuple(_recompile(m) for m in compiles if _is_recompile(m)),
            cudagraph_skips=tuple(reasons),
        )

    def close(self) -> None:
        logging.getLogger(CUDAGRAPH_LOG).removeHandler(self._handler)


def _frames_compiled(utils: Any) -> int:
    return int(utils.counters["frames"]["total"]) if utils else 0


def _cudagraph_skips(utils: Any) -> int:
    return int(utils.counters["inductor"]["cudagraph_skips"]) if utils else 0


def _graph_break(reason: Any) -> str:
    """``file:line `code`: why``: the innermost user frame dynamo recorded for the break."""
    stack = list(getattr(reason, "user_stack", None) or [])
    why = _first_line(str(getattr(reason, "reason", "")))
    if not stack:
        return f"(no source location recorded): {why}"
    frame = stack[-1]
    code = f" `{frame.line.strip()}`" if getattr(frame, "line", None) else ""
    return f"{_shown_path(frame.filename)}:{frame.lineno}{code}: {why}"


def _frame_compiles(records: Iterable[Any]) -> list[Any]:
    """dynamo's compilations of a Python frame, once each: torch records other phases of the
    same compilation too (without a frame), and those are not compilations of their own."""
    seen: set[str] = set()
    frames = []
    for record in records:
        key = str(getattr(record, "compile_id", None))
        if getattr(record, "co_name", None) and key not in seen:
            seen.add(key)
            frames.append(record)
    return frames


def _is_recompile(metrics: Any) -> bool:
    """A compilation of a frame dynamo had compiled before (its frame compile id is not 0)."""
    if getattr(metrics, "recompile_reason", None):
        return True
    compile_id = getattr(metrics, "compile_id", None)
    frame_compile_id = getattr(compile_id, "frame_compile_id", None)
    if frame_compile_id is None and isinstance(compile_id, str):  # "0/1" (a prefix for compiled autograd)
        tail = compile_id.rsplit("/", 1)[-1].split("_")[0]
        frame_compile_id = int(tail) if tail.isdigit() else None
    return bool(frame_compile_id)


def _recompile(metrics: Any) -> str:
    name = metrics.co_name
    where = getattr(metrics, "co_filename", None)
    line = getattr(metrics, "co_firstlineno", None)
    place = f" ({_shown_path(where)}:{line})" if where else ""
    reason = getattr(metrics, "recompile_reason", None)
    return f"{name}{place}: {_first_line(reason) if reason else 'recompiled (torch gave no reason)'}"


def _skip_reason(message: str) -> str:
    """inductor's reason, with the user code it found the reason in: its message ends with a
    stack ("Found from :" and File "...", line N lines), of which the last frame is the one to fix."""
    lines = message.strip().splitlines()
    reason = _first_line(message).rstrip().removesuffix("Found from :").strip().rstrip(".")
    frames = [i for i, line in enumerate(lines) if FRAME_LINE.search(line)]
    if not frames:
        return reason
    found = FRAME_LINE.search(lines[frames[-1]])
    assert found is not None
    code = lines[frames[-1] + 1].strip() if frames[-1] + 1 < len(lines) else ""
    return f"{reason}, at {_shown_path(found[1])}:{found[2]}" + (f" `{code}`" if code else "")


FRAME_LINE = re.compile(r'File "(.+)", line (\d+)')


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= REASON_WIDTH else line[: REASON_WIDTH - 3] + "..."


def _shown_path(path: str) -> str:
    """A path relative to the working directory where it lies below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if relative.startswith("..") else relative
