"""Record two-rank torch.profiler traces of steps with an all-reduce, one trace per rank, for
the tests of the cross-rank analysis (tests/data/traces/ranks/):

    torchrun --standalone --nproc-per-node 2 -m benchmarks.record_rank_traces OUTDIR

Three steps, each GEMMs then an all-reduce of the result:

- straggler: rank 1 does 30% more GEMM work; rank 0 waits for it inside the all-reduce;
- overlapped: the all-reduce of the previous chunk runs on NCCL's stream (async_op) while the
  next chunk's GEMMs run, balanced work: communication hidden behind computation;
- balanced: the same GEMM work on every rank, then the all-reduce, not overlapped.

NCCL's NVLink multicast stays off (NCCL_NVLS_ENABLE=0), as shared GPU hosts require.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch.profiler import ProfilerActivity, profile, schedule

SIZE = 4096
GEMMS = 10
STEPS = 3


def straggler(rank: int, a: torch.Tensor, b: torch.Tensor) -> Callable[[], None]:
    gemms = GEMMS + (GEMMS * 3 // 10 if rank == 1 else 0)

    def step() -> None:
        out = a
        for _ in range(gemms):
            out = torch.mm(out, b)
        dist.all_reduce(out)

    return step


def balanced(rank: int, a: torch.Tensor, b: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        out = a
        for _ in range(GEMMS):
            out = torch.mm(out, b)
        dist.all_reduce(out)

    return step


def overlapped(rank: int, a: torch.Tensor, b: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        pending = []
        out = a
        for _ in range(GEMMS):
            out = torch.mm(out, b)
            # Each chunk's all-reduce on NCCL's stream while the next GEMMs run; waited for at the end.
            pending.append(dist.all_reduce(out.clone(), async_op=True))
        for work in pending:
            work.wait()

    return step


STEPS_BY_NAME = {"straggler": straggler, "overlapped": overlapped, "balanced": balanced}
ONLY = os.environ.get("RECORD_ONLY", "")  # one step's name: record that one alone


def record(step: Callable[[], None], path: Path) -> None:
    for _ in range(5):  # warm: cuBLAS handles, NCCL communicators
        step()
    torch.cuda.synchronize()
    dist.barrier()
    raw = path.with_suffix("")
    with profile(
        activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
        schedule=schedule(wait=0, warmup=1, active=STEPS),
        on_trace_ready=lambda prof: prof.export_chrome_trace(str(raw)),
        record_shapes=True,
        with_flops=True,
    ) as prof:
        for index in range(1 + STEPS):
            step()
            if index in (0, STEPS):
                # Drain the warmup step (its async collectives would spill into the window) and
                # the last one (its collectives still running when the window closes).
                torch.cuda.synchronize()
            prof.step()
    torch.cuda.synchronize()
    with raw.open("rb") as src, gzip.GzipFile(path, "wb", mtime=0) as dst:
        shutil.copyfileobj(src, dst)
    raw.unlink()


def main() -> int:
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    dist.init_process_group("nccl")
    torch.manual_seed(rank)
    a = torch.randn(SIZE, SIZE, device="cuda", dtype=torch.bfloat16) / SIZE**0.5
    b = torch.randn(SIZE, SIZE, device="cuda", dtype=torch.bfloat16) / SIZE**0.5
    for name, make in STEPS_BY_NAME.items():
        if ONLY and name != ONLY:
            continue
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        record(make(rank, a, b), folder / f"rank{rank}.json.gz")
        dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
