"""Record real traces of library models for the analysis-speed benchmark (run on a CUDA machine).

    python -m benchmarks.record_real_traces OUTDIR

Seven models this project did not write (HF transformers, timm, torch.compile; random
weights), each profiled as ``pytest --gpuperf`` profiles a step (CudaBackend.profile) over
as many steps as make about 70k events: the size of the real traces HolisticTraceAnalysis
is compared on (docs/benchmarks.md, "Analysis speed").
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)

from pytest_gpuperf.cuda.backend import CudaBackend

DEVICE = "cuda"
TARGET_EVENTS = 70_000


def events_in(path: Path) -> int:
    with gzip.open(path, "rt") as f:
        return len(json.load(f)["traceEvents"])


def record(out: Path, name: str, step: Callable[[], Any]) -> None:
    """Profile one step to count its events, then as many steps as make about TARGET_EVENTS."""
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    probe = out / f"{name}.probe.json.gz"
    CudaBackend().profile(step, 1, probe)
    per_step = events_in(probe)
    probe.unlink()
    steps = max(1, min(200, round(TARGET_EVENTS / per_step)))
    path = out / f"{name}.json.gz"
    CudaBackend().profile(step, steps, path)
    print(f"{name}: {per_step} events a step, {steps} steps, {events_in(path)} events", flush=True)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: Callable[[], torch.Tensor]) -> None:
    with torch.autocast("cuda", torch.bfloat16):
        value = loss()
    value.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def image_training_step(model: torch.nn.Module) -> Callable[[], None]:
    """A training step of an image classifier already on the GPU in channels-last: SGD with
    momentum, a batch of 64 224x224 images, bf16 autocast."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images = torch.randn(64, 3, 224, 224, device=DEVICE).to(memory_format=torch.channels_last)
    classes = torch.randint(0, 1000, (64,), device=DEVICE)
    cross_entropy = torch.nn.functional.cross_entropy
    return lambda: train_step(model, optimizer, lambda: cross_entropy(model(images), classes))


@torch.no_grad()
def infer(model: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    model(*args, **kwargs)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    config = LlamaConfig(
        hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=8
    )
    llama = LlamaForCausalLM(config).to(DEVICE, torch.bfloat16).eval()
    prompt = torch.randint(0, config.vocab_size, (4, 128), device=DEVICE)
    generate = dict(max_new_tokens=16, min_new_tokens=16, do_sample=False, pad_token_id=0)
    record(out, "hf_llama_generate", lambda: infer(llama.generate, prompt, **generate))

    bert = BertForSequenceClassification(BertConfig()).to(DEVICE)
    bert_opt = torch.optim.AdamW(bert.parameters(), lr=1e-5)
    tokens = torch.randint(0, 30000, (16, 256), device=DEVICE)
    labels = torch.randint(0, 2, (16,), device=DEVICE)
    record(out, "hf_bert_train", lambda: train_step(bert, bert_opt, lambda: bert(input_ids=tokens, labels=labels).loss))

    gpt2 = GPT2LMHeadModel(GPT2Config()).to(DEVICE, torch.bfloat16).eval()
    text = torch.randint(0, 50000, (8, 512), device=DEVICE)
    record(out, "hf_gpt2_forward", lambda: infer(gpt2, text))

    resnet = timm.create_model("resnet50").to(DEVICE).to(memory_format=torch.channels_last)
    record(out, "timm_resnet50_train", image_training_step(resnet))

    vit = timm.create_model("vit_base_patch16_224").to(DEVICE, torch.bfloat16).eval()
    batch = torch.randn(32, 3, 224, 224, device=DEVICE, dtype=torch.bfloat16)
    record(out, "timm_vit_b16_infer", lambda: infer(vit, batch))

    convnext = torch.compile(timm.create_model("convnext_tiny").to(DEVICE, torch.bfloat16).eval())
    record(out, "compiled_convnext_infer", lambda: infer(convnext, batch))

    compiled_llama = torch.compile(llama)
    record(out, "compiled_llama_prefill", lambda: infer(compiled_llama, prompt))


if __name__ == "__main__":
    main()
