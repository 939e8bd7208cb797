"""Fixtures for the examples: the small decoder, sized for the device at hand.

On a GPU the model is the full example config in bf16; on a CPU-only machine a
smaller float32 one, so `pytest --gpuperf examples/` runs everywhere (on the
host clock there, with the GPU metrics reported unavailable).
"""

from __future__ import annotations

import pytest
import torch

from examples.tiny_llama import Config, Decoder, TinyLlama, build

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
CONFIG = Config() if ON_GPU else Config(vocab=2048, dim=256, layers=4, heads=8, kv_heads=2, ffn=704, max_seq=256)
DTYPE = torch.bfloat16 if ON_GPU else torch.float32
PROMPT_TOKENS = 128 if ON_GPU else 32
PREFILL_BATCH, PREFILL_TOKENS = (16, 1024) if ON_GPU else (2, 64)

needs_cuda = pytest.mark.skipif(not ON_GPU, reason="CUDA graphs need a CUDA device; none is present")


@pytest.fixture(scope="session")
def model() -> TinyLlama:
    return build(CONFIG, device=DEVICE, dtype=DTYPE)


@pytest.fixture
def decoder(model: TinyLlama) -> Decoder:
    """A batch-1 decoder that has read a prompt and is ready to generate."""
    decoder = Decoder(model, batch=1)
    decoder.prefill(torch.randint(0, CONFIG.vocab, (1, PROMPT_TOKENS), device=DEVICE))
    return decoder
