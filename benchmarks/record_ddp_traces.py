"""Record real data-parallel training traces, one per rank, for checking the analysis speed on
distributed traces (NCCL kernels, process-group metadata) it was not tuned on:

    torchrun --standalone --nproc-per-node 2 -m benchmarks.record_ddp_traces OUTDIR

HF GPT-2 and timm ResNet-50 training steps under DistributedDataParallel (random weights,
bf16 autocast), profiled with torch.profiler's defaults plus record_shapes after a wait and a
warmup step, written by tensorboard_trace_handler: ``OUTDIR/<model>/rank<N>.pt.trace.json.gz``,
about 70k events a rank. NCCL's NVLink multicast stays off (NCCL_NVLS_ENABLE=0), as shared
machines require.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import timm
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from transformers import GPT2Config, GPT2LMHeadModel

from benchmarks.record_other_traces import events_in, exported, scheduled
from benchmarks.record_real_traces import image_training_step, train_step

TARGET_EVENTS = 70_000


def record(out: Path, name: str, step: Callable[[], None], rank: int) -> None:
    """Warm up, count one step's events on rank 0, then every rank records as many steps."""
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    probe = exported(folder, f"probe{rank}", step, 1, record_shapes=True)
    steps = [max(1, round(TARGET_EVENTS / events_in(probe)))]
    probe.unlink()
    dist.broadcast_object_list(steps, src=0)  # the same steps on every rank: their collectives match
    # A schedule (wait, warmup, then the steps): the ranks' profilers start apart, and the first
    # collectives' wait for the later one stays out of the recorded steps.
    path = scheduled(folder, f"rank{rank}", step, steps[0], record_shapes=True)
    print(f"{name} rank {rank}: {steps[0]} steps, {events_in(path)} events", flush=True)
    dist.barrier()


def main() -> None:
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    device = int(os.environ.get("LOCAL_RANK", rank))
    torch.cuda.set_device(device)
    dist.init_process_group("nccl")
    torch.manual_seed(rank)

    gpt2 = DistributedDataParallel(GPT2LMHeadModel(GPT2Config()).cuda(), device_ids=[device])
    gpt2_opt = torch.optim.AdamW(gpt2.parameters(), lr=1e-5)
    text = torch.randint(0, 50000, (8, 512), device="cuda")
    record(out, "hf_gpt2_ddp_train", lambda: train_step(gpt2, gpt2_opt, lambda: gpt2(text, labels=text).loss), rank)

    resnet = timm.create_model("resnet50").cuda().to(memory_format=torch.channels_last)
    resnet = DistributedDataParallel(resnet, device_ids=[device])
    record(out, "timm_resnet50_ddp_train", image_training_step(resnet), rank)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
