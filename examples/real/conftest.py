"""The real-model zoo: model code this project did not write, measured as a user would.

HF transformers and timm are optional (``pip install -e ".[examples]"``): a test whose
library is missing is skipped with the reason. Weights are random (from a config; nothing
is downloaded). Sizes are the GPU's where torch sees one, small ones on a CPU.

``GPUPERF_ZOO_CHANGE`` makes one real change, for the A/B half of ``benchmarks/zoo_gating.py``
(unset: the zoo as it is):

- ``eager_attention``: the HF decoder with eager attention instead of SDPA;
- ``fp32``: the HF decoder and the CNN in float32 instead of bfloat16;
- ``extra_kernel``: the compiled MLP computes one more (unfused) operation after its output;
- ``bigger_copy``: the large copy moves 10% more bytes;
- ``host_sync``: the HF forward reads its next token back with ``.item()`` (the host waits);
- ``graph_break``: the compiled MLP breaks its graph between the up- and the down-projection;
- ``cudagraph_skip``: the compiled MLP scales its input in place, and a graph that mutates its
  input is not captured as a CUDA graph under ``mode="reduce-overhead"``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
CHANGE = os.environ.get("GPUPERF_ZOO_CHANGE", "")
CHANGES = ("", "eager_attention", "fp32", "extra_kernel", "bigger_copy", "host_sync", "graph_break", "cudagraph_skip")
if CHANGE not in CHANGES:
    raise pytest.UsageError(f"GPUPERF_ZOO_CHANGE={CHANGE!r}: expected one of {', '.join(c for c in CHANGES if c)}")
DTYPE = torch.float32 if CHANGE == "fp32" or not ON_GPU else torch.bfloat16


@pytest.fixture(scope="module")
def hf_decoder() -> Any:
    """A Llama-architecture decoder from transformers, random weights, in eval mode."""
    transformers = pytest.importorskip("transformers", reason="the HF examples need transformers (.[examples])")
    size = dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8) if ON_GPU else {}
    config = transformers.LlamaConfig(
        vocab_size=32000 if ON_GPU else 1024,
        hidden_size=size.get("hidden_size", 128),
        intermediate_size=size.get("intermediate_size", 352),
        num_hidden_layers=size.get("num_hidden_layers", 2),
        num_attention_heads=16 if ON_GPU else 4,
        num_key_value_heads=4 if ON_GPU else 2,
        max_position_embeddings=2048,
    )
    config._attn_implementation = "eager" if CHANGE == "eager_attention" else "sdpa"
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).to(device=DEVICE, dtype=DTYPE).eval()
    return model


@pytest.fixture(scope="module")
def cnn() -> Any:
    """timm's ResNet-50 (ResNet-18 on a CPU), random weights, channels-last, eval mode."""
    timm = pytest.importorskip("timm", reason="the CNN example needs timm (.[examples])")
    torch.manual_seed(0)
    model = timm.create_model("resnet50" if ON_GPU else "resnet18", pretrained=False)
    return model.to(device=DEVICE, dtype=DTYPE, memory_format=torch.channels_last).eval()
