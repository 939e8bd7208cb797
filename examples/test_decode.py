"""The profiling workflow as tests, on a small Llama-style decoder.

1. Eager batch-1 decode: the GPU idles while Python launches ~500 small kernels a
   step; gpuperf classifies it overhead-bound and says to capture a CUDA graph.
2. The same step captured as a CUDA graph: one launch per step; it meets a
   budget several times tighter.
3. Prefill of 16 x 1024 tokens: large matrix products; classified compute-bound
   by the roofline.

Run: pytest --gpuperf examples/  (without --gpuperf each body runs once, as a test)
"""

from __future__ import annotations

import pytest
import torch

from examples.conftest import CONFIG, DEVICE, PREFILL_BATCH, PREFILL_TOKENS, needs_cuda
from examples.tiny_llama import Decoder, TinyLlama, capture_cuda_graph


@pytest.mark.gpu_budget(p99_ms=60, peak_mem_mb=4096)
def test_decode_eager(gpu_profiler, decoder: Decoder) -> None:
    token = gpu_profiler(decoder.decode_step, items=1)
    assert token.shape == (1, 1)


@needs_cuda
@pytest.mark.gpu_budget(p99_ms=3, gpu_active_pct_min=50, dispatch_ratio_max=2, peak_mem_mb=4096)
def test_decode_cuda_graph(gpu_profiler, decoder: Decoder) -> None:
    graph = capture_cuda_graph(decoder.decode_step)
    gpu_profiler(graph.replay, items=1)
    assert 0 <= int(decoder.token.item()) < CONFIG.vocab


@pytest.mark.gpu_budget(p99_ms=200, peak_mem_mb=16384)
def test_prefill(gpu_profiler, model: TinyLlama) -> None:
    decoder = Decoder(model, batch=PREFILL_BATCH)
    prompt = torch.randint(0, CONFIG.vocab, (PREFILL_BATCH, PREFILL_TOKENS), device=DEVICE)
    logits = gpu_profiler(decoder.prefill, prompt, items=PREFILL_BATCH * PREFILL_TOKENS)
    assert logits.shape == (PREFILL_BATCH, CONFIG.vocab)
