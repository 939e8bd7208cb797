"""Capture a step as CUDA graphs and replay it with new inputs (the ``cuda_graph`` fixture).

``CudaGraphStep(step, *example_inputs, batch_sizes=None)`` warms the step up on a side
stream, captures one graph per batch size (largest first, all in one memory pool), and
is called like the step: new inputs are copied into the static buffers, the graph is
replayed, and the static outputs are returned (the first rows, when padded). It holds
the step, and with it every tensor the graph reads: a graph whose tensors were freed
replays on reused memory.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from pytest_gpuperf.errors import GpuperfError

SYNC_WORDS = ("capturing", "capture", "not permitted", "synchroniz", "operation not supported")


class GraphCaptureError(GpuperfError, RuntimeError):
    """The step cannot be captured as a CUDA graph: the cause and the fix."""


def _check_inputs(inputs: Sequence[Any]) -> None:
    for index, value in enumerate(inputs):
        if not isinstance(value, torch.Tensor):
            raise GraphCaptureError(
                f"input {index} is a {type(value).__name__}, not a tensor: a graph replays fixed device work, "
                "so pass tensors (bind other arguments with functools.partial or a closure)"
            )
        if value.device.type != "cuda":
            raise GraphCaptureError(
                f"input {index} is on {value.device}: a CUDA graph reads device memory only; "
                "move it to the GPU (.cuda()) before capturing"
            )


def _explain(raised: BaseException) -> GraphCaptureError:
    # A failed op inside the capture is followed by the capture's end failing too ("operation
    # failed due to a previous error during capture"): the first error names the blocker.
    exc = _first_error(raised)
    text = str(exc)
    said = text.splitlines()[0] if text else type(exc).__name__
    where = _blocker(exc)
    at = f" at {where}" if where else ""
    if any(word in text.lower() for word in SYNC_WORDS):
        return GraphCaptureError(
            f"the step synchronizes with the host{at} while being captured (.item(), .cpu(), .tolist(), printing "
            "a tensor, a Python `if` on a tensor, torch.cuda.synchronize, or an op that sizes its output from "
            "data such as nonzero): keep values on the device (torch.where instead of `if`, device-side "
            f"counters) and move host reads out of the step. torch said: {said}"
        )
    return GraphCaptureError(f"capturing the step failed{at}: {said}")


def _first_error(exc: BaseException) -> BaseException:
    """The error that began a chain of errors raised while handling one another."""
    seen = {id(exc)}
    while exc.__context__ is not None and id(exc.__context__) not in seen:
        exc = exc.__context__
        seen.add(id(exc))
    return exc


_LIBRARY_DIRS = (str(Path(torch.__file__).parent), str(Path(__file__).parent.parent))  # torch, this plugin


def _blocker(exc: BaseException) -> str:
    """The step's own line that raised during the capture (``file:line `code```): the innermost
    frame outside torch and this plugin; empty where every frame is theirs."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_LIBRARY_DIRS)]
    if not frames:
        return ""
    frame = frames[-1]
    code = f" `{frame.line.strip()}`" if frame.line else ""
    return f"{frame.filename}:{frame.lineno}{code}"


def _recover_from_failed_capture(stream: torch.cuda.Stream, generator: torch.Generator, saved: torch.Generator) -> None:
    """Leave the process as it was before a capture that failed.

    torch.cuda.graph does not undo its set-up when the capture fails: the capture stream
    stays current, and the default generator stays marked as capturing, so every later
    random op in the process raises "Offset increment outside graph capture".
    """
    torch.cuda.set_stream(stream)
    generator.graphsafe_set_state(saved)


class CudaGraphStep:
    def __init__(
        self,
        step: Callable[..., Any],
        *example_inputs: torch.Tensor,
        batch_sizes: Sequence[int] | None = None,
        warmup_calls: int = 3,
    ) -> None:
        if not torch.cuda.is_available():
            raise GraphCaptureError("CUDA graphs need a CUDA device; torch sees none")
        _check_inputs(example_inputs)
        self.step = step  # held: the graph reads the tensors the step closes over
        self._shapes = [tuple(t.shape[1:]) for t in example_inputs]
        sizes = sorted(set(batch_sizes)) if batch_sizes else [example_inputs[0].shape[0] if example_inputs else 1]
        if batch_sizes and not example_inputs:
            raise GraphCaptureError("batch_sizes= needs example inputs whose first dimension is the batch")
        if any(size < 1 for size in sizes):
            raise GraphCaptureError(f"batch sizes must be 1 or more, not {sizes}")
        self.batch_sizes = tuple(sizes)
        largest = sizes[-1]
        # Static inputs of the largest batch; smaller graphs capture views of their first rows.
        self._static = [torch.zeros((largest, *t.shape[1:]), dtype=t.dtype, device=t.device) for t in example_inputs]
        for buffer, t in zip(self._static, example_inputs, strict=True):
            buffer[: t.shape[0]].copy_(t)
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, Any, list[torch.Tensor]]] = {}
        pool = torch.cuda.graph_pool_handle()
        for size in reversed(sizes):  # largest first: the smaller graphs fit in its pool
            views = [buffer[:size] for buffer in self._static]
            self._graphs[size] = self._capture(step, views, pool, warmup_calls)

    def _capture(
        self, step: Callable[..., Any], inputs: list[torch.Tensor], pool: Any, warmup_calls: int
    ) -> tuple[torch.cuda.CUDAGraph, Any, list[torch.Tensor]]:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(side):
                for _ in range(warmup_calls):
                    step(*inputs)
            torch.cuda.current_stream().wait_stream(side)
        except RuntimeError as exc:
            raise _explain(exc) from exc
        stream, generator = torch.cuda.current_stream(), torch.cuda.default_generators[torch.cuda.current_device()]
        saved = generator.clone_state()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=pool):
                output = step(*inputs)
        except RuntimeError as exc:
            _recover_from_failed_capture(stream, generator, saved)
            raise _explain(exc) from exc
        return graph, output, inputs

    def graph_for(self, batch: int) -> int:
        """The captured batch size a call of ``batch`` rows replays (the nearest at or above)."""
        for size in self.batch_sizes:
            if size >= batch:
                return size
        raise GraphCaptureError(
            f"a batch of {batch} is larger than every captured size {list(self.batch_sizes)}: "
            "capture with a larger batch_sizes="
        )

    def __call__(self, *inputs: torch.Tensor) -> Any:
        if len(inputs) != len(self._static):
            raise GraphCaptureError(
                f"the graph was captured with {len(self._static)} inputs, called with {len(inputs)}"
            )
        batch = inputs[0].shape[0] if inputs else self.batch_sizes[0]
        for index, (value, shape) in enumerate(zip(inputs, self._shapes, strict=True)):
            if tuple(value.shape[1:]) != shape or value.shape[0] != batch:
                raise GraphCaptureError(
                    f"input {index} has shape {tuple(value.shape)}; the graph was captured for "
                    f"[batch, {', '.join(map(str, shape))}]: a graph replays fixed shapes, so capture one per "
                    "shape (batch_sizes= covers the batch dimension)"
                )
        size = self.graph_for(batch)
        graph, output, static = self._graphs[size]
        for buffer, value in zip(static, inputs, strict=True):
            buffer[:batch].copy_(value)
        graph.replay()
        if batch == size or not isinstance(output, torch.Tensor):
            return output
        return output[:batch]
