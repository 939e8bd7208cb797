"""Record the small real traces that the tests pin (run on a CUDA machine).

    python -m benchmarks.record_traces OUTDIR

Writes gzipped torch.profiler (Kineto) Chrome traces of this project's own
workloads, each profiled as ``pytest --gpuperf`` profiles a step (CudaBackend.profile:
one drained warmup step, then 2 steps back to back):

- decode_eager:  batch-1 greedy decode step of examples/tiny_llama.py, eager
- decode_graph:  the same step captured once and replayed as a CUDA graph
- prefill:       a prefill of 16 prompts of 1024 tokens on the same model
- alloc:         a step that allocates fresh device memory after emptying the cache
- gemm:          a 4096x4096x4096 bf16 matrix product
- copy:          a copy-heavy step: host-to-device, device-to-device, memset, device-to-host
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch

from examples.tiny_llama import Decoder, build
from pytest_gpuperf.cuda.backend import CudaBackend
from pytest_gpuperf.cuda.graphs import CudaGraphStep

STEPS = 2


def record(out: Path, name: str, step: Callable[[], object]) -> Path:
    """Profile ``step`` exactly as ``pytest --gpuperf`` does (CudaBackend.profile)."""
    for _ in range(10):
        step()
    path = out / f"{name}.json.gz"
    problem = CudaBackend().profile(step, STEPS, path)
    if problem is not None:
        raise RuntimeError(f"{name}: {problem}")
    print(f"{name}: {path.stat().st_size / 1024:.0f} KiB gzipped")
    return path


def _memset_async() -> Callable[[torch.Tensor], None]:
    """cudaMemsetAsync on the current stream (torch's zero_ launches a fill kernel instead)."""
    try:
        import cupy
    except ImportError:
        return lambda t: t.zero_()

    def memset(t: torch.Tensor) -> None:
        stream = torch.cuda.current_stream().cuda_stream
        cupy.cuda.runtime.memsetAsync(t.data_ptr(), 0, t.numel() * t.element_size(), stream)

    return memset


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())

    model = build()
    decoder = Decoder(model, batch=1)
    prompt = torch.randint(0, model.cfg.vocab, (1, 128), device="cuda")
    decoder.prefill(prompt)
    record(out, "decode_eager", decoder.decode_step)

    graph_decoder = Decoder(model, batch=1)
    graph_decoder.prefill(prompt)
    record(out, "decode_graph", CudaGraphStep(graph_decoder.decode_step))

    long_prompt = torch.randint(0, model.cfg.vocab, (16, 1024), device="cuda")
    prefill_decoder = Decoder(model, batch=16)
    record(out, "prefill", lambda: prefill_decoder.prefill(long_prompt))

    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    record(out, "gemm", lambda: a @ b)

    host = torch.randn(16 * 1024 * 1024, pin_memory=True)  # 64 MiB pinned
    back = torch.empty_like(host).pin_memory()
    dev = torch.empty(host.shape, device="cuda")
    dev2 = torch.empty_like(dev)

    memset = _memset_async()

    def copy_step() -> None:
        dev.copy_(host, non_blocking=True)
        dev2.copy_(dev)
        memset(dev)
        back.copy_(dev2, non_blocking=True)

    record(out, "copy", copy_step)

    def alloc_step() -> None:
        torch.cuda.empty_cache()  # every allocation below reaches cudaMalloc
        blocks = [torch.empty(2 * 1024**3, dtype=torch.uint8, device="cuda") for _ in range(4)]
        for block in blocks:
            block.fill_(1)

    record(out, "alloc", alloc_step)


if __name__ == "__main__":
    main()
