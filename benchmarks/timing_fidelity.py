"""The plugin's p50 against a bare loop of the same call, in the same process (on a GPU).

    python -m benchmarks.timing_fidelity OUT.json [--repeat 3]

For the zoo's host-paced steps (an HF Llama forward, timm's ResNet-50 at batch 64, an fp32
1024 matmul), in one process and in turn, ``--repeat`` times:

- ``bare``: ``step(); torch.cuda.synchronize()`` timed with the host clock, median of the calls;
- ``bare_batch``: the calls back to back, one synchronization at the end, time per call;
- ``events``: the CUDA backend's own call times (an event pair around each call, one
  synchronization per batch), median;
- ``plugin``: the whole protocol (warmup until steady, 10 rounds of >= 50 ms), its p50;
then the same after a torch.profiler pass of the step and after counting its host work (the
two things the plugin does to a step after timing it), to see whether either slows what follows.
Each figure is in ms per call; the report gives each against ``bare`` of the same repeat.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pytest_gpuperf.cuda.backend import CudaBackend
from pytest_gpuperf.measuring.config import ProtocolConfig
from pytest_gpuperf.measuring.hostwork import count_host_work
from pytest_gpuperf.measuring.protocol import measure

CALLS = 200
PROTOCOL = ProtocolConfig(
    warmup_calls=5, warmup_ms=100.0, rounds=10, round_ms=50.0, max_rounds=10, profile_steps=0, host_work_calls=0
)


def steps() -> dict[str, Callable[[], Any]]:
    import timm
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
        num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=2048,
    )  # fmt: skip
    config._attn_implementation = "sdpa"
    llama = transformers.LlamaForCausalLM(config).to(device="cuda", dtype=torch.bfloat16).eval()
    ids = torch.randint(0, 32000, (1, 128), device="cuda")
    cnn = timm.create_model("resnet50", pretrained=False).to(
        device="cuda", dtype=torch.bfloat16, memory_format=torch.channels_last
    )
    images = torch.randn(64, 3, 224, 224, device="cuda", dtype=torch.bfloat16).to(memory_format=torch.channels_last)
    a, b = (torch.randn(1024, 1024, device="cuda") for _ in range(2))

    @torch.inference_mode()
    def hf_forward() -> Any:
        return llama(input_ids=ids, use_cache=False).logits

    @torch.inference_mode()
    def cnn_forward() -> Any:
        return cnn.eval()(images)

    return {"hf_forward": hf_forward, "cnn_forward": cnn_forward, "small_matmul": lambda: torch.matmul(a, b)}


def bare(step: Callable[[], Any]) -> float:
    times = []
    for _ in range(CALLS):
        started = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def bare_batch(step: Callable[[], Any]) -> float:
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(CALLS):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - started) * 1000.0 / CALLS


def events(backend: CudaBackend, step: Callable[[], Any]) -> float:
    return statistics.median(backend.call_times_ms(step, CALLS))


def plugin(backend: CudaBackend, step: Callable[[], Any], folder: Path) -> float:
    m = measure(backend, step, PROTOCOL, test_id="t", budget={}, items=None, trace_path=folder / "t.json.gz")
    return m.p50.value


def one_step(name: str, step: Callable[[], Any], backend: CudaBackend, folder: Path, repeat: int) -> dict[str, Any]:
    for _ in range(20):
        step()
    torch.cuda.synchronize()
    runs = []
    for _ in range(repeat):
        figures = {
            "bare": bare(step),
            "bare_batch": bare_batch(step),
            "events": events(backend, step),
            "plugin": plugin(backend, step, folder),
        }
        runs.append(figures)
    backend.profile(step, 3, folder / f"{name}.json.gz")
    after_profile = {"bare": bare(step), "plugin": plugin(backend, step, folder)}
    count_host_work(step, 3)
    after_count = {"bare": bare(step), "plugin": plugin(backend, step, folder)}
    return {"runs": runs, "after_profile": after_profile, "after_count": after_count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    backend = CudaBackend()
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as folder:
        for name, step in steps().items():
            found = one_step(name, step, backend, Path(folder), args.repeat)
            results[name] = found
            for i, run in enumerate(found["runs"]):
                shown = ", ".join(f"{k} {v:.3f} ({v / run['bare']:.2f}x)" for k, v in run.items())
                print(f"{name} repeat {i}: {shown}", flush=True)
            for when in ("after_profile", "after_count"):
                f = found[when]
                print(f"{name} {when}: bare {f['bare']:.3f}, plugin {f['plugin']:.3f}", flush=True)
    args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
