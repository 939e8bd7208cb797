"""The GPU steps the benchmarks measure, one per workload class, and an injected delay.

- gemm: a 4096 x 4096 bf16 matrix product (compute-bound; its clock drifts as the card heats)
- copy: a 512 MiB device-to-device copy (memory-bound)
- graph_decode: the example decoder's batch-1 decode step replayed as a CUDA graph
- eager_decode: the same step launched eagerly (host-bound)

``delayed(step, ms)`` appends a GPU busy-wait of ``ms`` (torch.cuda._sleep, calibrated in
this process) to a step: a regression of known size on the GPU timeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

WORKLOADS = ("gemm", "copy", "graph_decode", "eager_decode")


def build(name: str) -> Callable[[], Any]:
    if name == "gemm":
        a, b = (torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        out = torch.empty_like(a)
        return lambda: torch.mm(a, b, out=out)
    if name == "copy":
        src = torch.empty(512 * 2**20, dtype=torch.uint8, device="cuda")
        dst = torch.empty_like(src)
        return lambda: dst.copy_(src)
    if name in ("graph_decode", "eager_decode"):
        from examples.tiny_llama import Decoder
        from examples.tiny_llama import build as build_model
        from pytest_gpuperf.cuda.graphs import CudaGraphStep

        model = build_model()
        decoder = Decoder(model, batch=1)
        decoder.prefill(torch.randint(0, model.cfg.vocab, (1, 128), device="cuda"))
        if name == "eager_decode":
            return decoder.decode_step
        # CudaGraphStep holds the step, so the weights and cache the graph reads stay alive.
        return CudaGraphStep(decoder.decode_step)
    raise ValueError(f"unknown workload {name!r}; one of {', '.join(WORKLOADS)}")


_cycles_per_ms: float | None = None


def sleep_cycles_per_ms() -> float:
    """GPU clock cycles torch.cuda._sleep spins per millisecond here, measured once."""
    global _cycles_per_ms
    if _cycles_per_ms is None:
        torch.cuda._sleep(1_000_000)  # warm
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.cuda._sleep(20_000_000)
        end.record()
        end.synchronize()
        _cycles_per_ms = 20_000_000 / start.elapsed_time(end)
    return _cycles_per_ms


def delayed(step: Callable[[], Any], ms: float) -> Callable[[], Any]:
    if ms <= 0:
        return step
    cycles = int(ms * sleep_cycles_per_ms())

    def slower() -> Any:
        result = step()
        torch.cuda._sleep(cycles)
        return result

    return slower
