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
  input is not captured as a CUDA graph under ``mode="reduce-overhead"``;
- ``wider_mlp``: the HF decoder's MLP 18% wider (intermediate size 2816 -> 3328): about 10% more
  GPU work per step with the same kernels launched, in a step the host paces;
- ``python_work``: pure-Python work before every HF decoder layer (no torch operation), about a
  tenth of the host's time per step;
- ``generate_gpu_work``: HF ``generate``'s logits processor multiplies 3072-square matrices
  instead of 1024-square ones, at every decode step.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
CHANGE = os.environ.get("GPUPERF_ZOO_CHANGE", "")
CHANGES = (
    "", "eager_attention", "fp32", "extra_kernel", "bigger_copy", "host_sync", "graph_break", "cudagraph_skip",
    "wider_mlp", "python_work", "generate_gpu_work",
)  # fmt: skip
if CHANGE not in CHANGES:
    raise pytest.UsageError(f"GPUPERF_ZOO_CHANGE={CHANGE!r}: expected one of {', '.join(c for c in CHANGES if c)}")
DTYPE = torch.float32 if CHANGE == "fp32" or not ON_GPU else torch.bfloat16


@pytest.fixture(scope="module")
def hf_decoder() -> Any:
    """A Llama-architecture decoder from transformers, random weights, in eval mode."""
    transformers = pytest.importorskip("transformers", reason="the HF examples need transformers (.[examples])")
    wide = 3328 if CHANGE == "wider_mlp" else 2816
    size = dict(hidden_size=1024, intermediate_size=wide, num_hidden_layers=8) if ON_GPU else {}
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
    if CHANGE == "python_work":
        for layer in model.model.layers:
            layer.register_forward_pre_hook(busy_python)
    return model


def busy_python(module: Any, args: Any) -> None:
    """Host work in Python alone: no torch operation, nothing for the GPU."""
    total = 0
    for i in range(PYTHON_WORK_ITERATIONS):
        total += i & 7
    module.last_busy_total = total


PYTHON_WORK_ITERATIONS = 2000


@pytest.fixture(scope="module")
def cnn() -> Any:
    """timm's ResNet-50 (ResNet-18 on a CPU), random weights, channels-last, eval mode."""
    timm = pytest.importorskip("timm", reason="the CNN example needs timm (.[examples])")
    torch.manual_seed(0)
    model = timm.create_model("resnet50" if ON_GPU else "resnet18", pretrained=False)
    return model.to(device=DEVICE, dtype=DTYPE, memory_format=torch.channels_last).eval()
