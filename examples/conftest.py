"""Fixtures for the examples: the small decoder, sized for the device at hand.

On a GPU the model is the full example config in bf16; on a CPU-only machine a
smaller float32 one, so `pytest --gpuperf examples/` runs everywhere (on the
host clock there, with the GPU metrics reported unavailable).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from examples.tiny_llama import Config, Decoder, PagedDecoder, TinyLlama, build

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
CONFIG = Config() if ON_GPU else Config(vocab=2048, dim=256, layers=4, heads=8, kv_heads=2, ffn=704, max_seq=256)
DTYPE = torch.bfloat16 if ON_GPU else torch.float32
PROMPT_TOKENS = 128 if ON_GPU else 32
PREFILL_BATCH, PREFILL_TOKENS = (16, 1024) if ON_GPU else (2, 64)

PAGE_TOKENS = 16


@pytest.fixture(scope="session")
def model() -> TinyLlama:
    return build(CONFIG, device=DEVICE, dtype=DTYPE)


@pytest.fixture
def decoder(model: TinyLlama) -> Decoder:
    """A batch-1 decoder that has read a prompt and is ready to generate."""
    decoder = Decoder(model, batch=1)
    torch.manual_seed(1)
    decoder.prefill(torch.randint(0, CONFIG.vocab, (1, PROMPT_TOKENS), device=DEVICE))
    return decoder


@pytest.fixture
def paged_pool(kv_pool) -> Any:
    """A paged KV pool (pytest-gpuperf's kv_pool) that holds one sequence of the model's longest."""
    return kv_pool(
        num_blocks=CONFIG.max_seq // PAGE_TOKENS,
        num_layers=CONFIG.layers,
        num_kv_heads=CONFIG.kv_heads,
        block_size=PAGE_TOKENS,
        head_dim=CONFIG.head_dim,
        dtype=DTYPE,
        device=DEVICE,
    )


@pytest.fixture
def paged_decoder(model: TinyLlama, paged_pool: Any) -> PagedDecoder:
    """The same decoder on the paged pool: prompt read, ready to generate."""
    pool = paged_pool
    decoder = PagedDecoder(model, pool, max_tokens=CONFIG.max_seq)
    torch.manual_seed(1)
    decoder.prefill(torch.randint(0, CONFIG.vocab, (1, PROMPT_TOKENS), device=DEVICE))
    return decoder
