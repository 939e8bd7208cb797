"""Record a second set of real traces, for checking the analysis speed on traces it was not tuned on
(run on a CUDA machine).

    python -m benchmarks.record_other_traces OUTDIR

``record_real_traces`` profiles seven models as ``pytest --gpuperf`` does. These are other
models (HF T5, DistilBERT, Mistral, Whisper; timm EfficientNet, Swin, MobileNetV3; random
weights) profiled the ways users call torch.profiler themselves: default options and
``export_chrome_trace``; ``tensorboard_trace_handler`` with a schedule (torch writes the
gzip); ``with_stack``; ``profile_memory`` with ``with_modules``; CUDA graphs from
``torch.compile(mode="reduce-overhead")``; and one trace of about 250k events.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
import torch
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler
from transformers import (
    DistilBertConfig,
    DistilBertForSequenceClassification,
    MistralConfig,
    MistralForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
    WhisperConfig,
    WhisperForConditionalGeneration,
)

from benchmarks.record_real_traces import image_training_step, infer, train_step

DEVICE = "cuda"
ACTIVITIES = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
Step = Callable[[], Any]


def events_in(path: Path) -> int:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as f:
        return len(json.load(f)["traceEvents"])


def exported(out: Path, name: str, step: Step, steps: int, **options: Any) -> Path:
    """``steps`` steps under one profiler context, written with export_chrome_trace, gzipped."""
    with profile(activities=ACTIVITIES, **options) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    raw = out / f"{name}.json"
    prof.export_chrome_trace(str(raw))
    path = out / f"{name}.json.gz"
    with raw.open("rb") as src, gzip.open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    raw.unlink()
    return path


def scheduled(out: Path, name: str, step: Step, steps: int, **options: Any) -> Path:
    """A schedule (wait 1, warmup 1, ``steps`` active) and tensorboard_trace_handler writing gzip."""
    folder = Path(tempfile.mkdtemp(dir=out))
    with profile(
        activities=ACTIVITIES,
        schedule=schedule(wait=1, warmup=1, active=steps),
        on_trace_ready=tensorboard_trace_handler(str(folder), use_gzip=True),
        **options,
    ) as prof:
        for _ in range(steps + 2):
            step()
            prof.step()
        torch.cuda.synchronize()
    (written,) = folder.glob("*.pt.trace.json.gz")
    path = out / f"{name}.pt.trace.json.gz"
    written.rename(path)
    folder.rmdir()
    return path


def record(out: Path, name: str, step: Step, how: Callable[..., Path], target: int = 70_000, **options: Any) -> None:
    """Warm up, count one step's events, then record as many steps as make about ``target``.
    A model that fails is reported and the others still recorded."""
    try:
        _record(out, name, step, how, target, **options)
    except Exception as exc:
        print(f"{name}: failed: {exc!r}", flush=True)


def _record(out: Path, name: str, step: Step, how: Callable[..., Path], target: int, **options: Any) -> None:
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    probe = exported(out, f"{name}.probe", step, 1, **options)
    per_step = events_in(probe)
    probe.unlink()
    steps = max(1, min(400, round(target / per_step)))
    path = how(out, name, step, steps, **options)
    print(f"{path.name}: {per_step} events a step, {steps} steps, {events_in(path)} events", flush=True)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)

    t5_config = T5Config(d_model=512, num_layers=6, num_heads=8, decoder_start_token_id=0)
    t5 = T5ForConditionalGeneration(t5_config).to(DEVICE).eval()
    source = torch.randint(0, 32000, (4, 96), device=DEVICE)
    generate = dict(max_new_tokens=24, min_new_tokens=24, do_sample=False)
    record(out, "hf_t5_generate", lambda: infer(t5.generate, source, **generate), exported)

    distilbert = DistilBertForSequenceClassification(DistilBertConfig()).to(DEVICE).eval()
    tokens = torch.randint(0, 30000, (32, 128), device=DEVICE)
    record(out, "hf_distilbert_stack", lambda: infer(distilbert, tokens), exported, with_stack=True, record_shapes=True)

    mistral_config = MistralConfig(
        hidden_size=1024, intermediate_size=3584, num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=8
    )
    mistral = MistralForCausalLM(mistral_config).to(DEVICE, torch.bfloat16).eval()
    prompt = torch.randint(0, mistral_config.vocab_size, (4, 256), device=DEVICE)
    record(
        out,
        "hf_mistral_prefill_memory",
        lambda: infer(mistral, prompt),
        exported,
        profile_memory=True,
        record_shapes=True,
        with_modules=True,
    )

    whisper = WhisperForConditionalGeneration(WhisperConfig()).to(DEVICE)
    whisper_opt = torch.optim.AdamW(whisper.parameters(), lr=1e-5)
    features = torch.randn(8, 80, 3000, device=DEVICE)
    decoder_labels = torch.randint(0, 50000, (8, 64), device=DEVICE)
    record(
        out,
        "hf_whisper_train",
        lambda: train_step(whisper, whisper_opt, lambda: whisper(input_features=features, labels=decoder_labels).loss),
        scheduled,
        record_shapes=True,
    )

    effnet = timm.create_model("efficientnet_b0").to(DEVICE).to(memory_format=torch.channels_last)
    record(out, "timm_efficientnet_train", image_training_step(effnet), scheduled, with_flops=True)

    swin = timm.create_model("swin_tiny_patch4_window7_224").to(DEVICE, torch.bfloat16).eval()
    compiled_swin = torch.compile(swin, mode="reduce-overhead")
    batch = torch.randn(16, 3, 224, 224, device=DEVICE, dtype=torch.bfloat16)
    record(out, "compiled_swin_cudagraphs", lambda: infer(compiled_swin, batch), exported)

    mobilenet = timm.create_model("mobilenetv3_large_100").to(DEVICE).eval()
    small = torch.randn(8, 3, 224, 224, device=DEVICE)
    record(out, "timm_mobilenetv3_long", lambda: infer(mobilenet, small), exported, target=250_000, record_shapes=True)


if __name__ == "__main__":
    main()
