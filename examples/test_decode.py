"""The profiling workflow as tests, on a small Llama-style decoder.

1. Eager batch-1 decode: the GPU idles while Python launches ~1500 small kernels a
   step; gpuperf classifies it overhead-bound and says to capture a CUDA graph.
2. The same step captured with the cuda_graph fixture: one launch per step; it meets
   a budget many times tighter.
3. Paged decode on the kv_pool fixture: the KV cache in preallocated blocks, as a
   serving engine keeps it; still eager, and allocating no device memory per step.
4. Prefill of 16 x 1024 tokens: large matrix products; classified compute-bound.
5. A request served on the paged pool, timed per token: time to first token (the prefill)
   and time per output token (each decode step) are judged apart.

Run: pytest --gpuperf examples/  (without --gpuperf each body runs once, as a test)
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from examples.conftest import CONFIG, DEVICE, ON_GPU, PREFILL_BATCH, PREFILL_TOKENS, PROMPT_TOKENS
from examples.tiny_llama import Decoder, PagedDecoder, TinyLlama


# p99 150 ms: eager batch-1 decode's tail is the host's (p50 about 14 ms on an H100; busy hosts
# read p99 41.7 and 48.0 ms on two starts, the second a marginal pass against 60).
@pytest.mark.gpu_budget(p99_ms=150, peak_mem_mb=4096)
def test_decode_eager(gpu_profiler, decoder: Decoder) -> None:
    token = gpu_profiler(decoder.decode_step, items=1)
    assert token.shape == (1, 1)


# p99 10 ms: the graph's p50 is about 1.1 ms on an H100, and a busy host stretched its p99 to
# 3.2 ms on one start (a 3 ms budget failed there): the tail bound must hold on any start.
@pytest.mark.gpu_budget(p99_ms=10, gpu_active_pct_min=50, dispatch_ratio_max=2, peak_mem_mb=4096)
def test_decode_cuda_graph(gpu_profiler, cuda_graph, decoder: Decoder) -> None:
    step = cuda_graph(decoder.decode_step)
    token = gpu_profiler(step, items=1)
    assert 0 <= int(token.item()) < CONFIG.vocab


@pytest.mark.gpu_budget(p99_ms=500, peak_mem_mb=4096)
def test_decode_paged(gpu_profiler, paged_decoder: PagedDecoder, decoder: Decoder) -> None:
    # The paged cache decodes the same tokens as the static one.
    assert [int(paged_decoder.decode_step()) for _ in range(4)] == [int(decoder.decode_step()) for _ in range(4)]
    gpu_profiler(paged_decoder.decode_step, items=1)
    stats = paged_decoder.pool.stats()
    assert stats.blocks_used <= stats.blocks_total


@pytest.mark.gpu_budget(p99_ms=200, peak_mem_mb=16384)
def test_prefill(gpu_profiler, model: TinyLlama) -> None:
    decoder = Decoder(model, batch=PREFILL_BATCH)
    prompt = torch.randint(0, CONFIG.vocab, (PREFILL_BATCH, PREFILL_TOKENS), device=DEVICE)
    logits = gpu_profiler(decoder.prefill, prompt, items=PREFILL_BATCH * PREFILL_TOKENS)
    assert logits.shape == (PREFILL_BATCH, CONFIG.vocab)


GENERATED_TOKENS = 32 if ON_GPU else 8


def serve(model: TinyLlama, pool: Any, prompt: torch.Tensor, tokens: int, streamer: Any) -> torch.Tensor:
    """One request on the paged pool: prefill, then a token per decode step, each handed to the
    streamer as it is made (on the device: no sync); the request's blocks go back at the end."""
    decoder = PagedDecoder(model, pool, max_tokens=CONFIG.max_seq)
    try:
        decoder.prefill(prompt)
        streamer.put(decoder.token)  # the first token comes from the prefill
        for _ in range(tokens - 1):
            streamer.put(decoder.decode_step())
    finally:
        pool.release(decoder.cache.seq)
    return decoder.token


@pytest.mark.gpu_budget(ttft_ms=200, tpot_ms=100, peak_mem_mb=4096)
def test_serve_a_request(gpu_profiler, model: TinyLlama, paged_pool: Any) -> None:
    pool = paged_pool
    prompt = torch.randint(0, CONFIG.vocab, (1, PROMPT_TOKENS), device=DEVICE)
    token = gpu_profiler.generate(serve, model, pool, prompt, GENERATED_TOKENS, kv_pool=pool)
    assert token.shape == (1, 1) and pool.stats().blocks_used == 0
