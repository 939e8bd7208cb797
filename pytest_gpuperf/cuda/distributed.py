"""Agreement and gathering between the ranks of a torchrun job (torch.distributed).

The plugin talks over its own gloo group, on the CPU, so it never queues work on the
streams the test's NCCL collectives use. Where the test has not initialised the default
process group by the first measured test, gpuperf does (env:// from torchrun; backend
"cpu:gloo,cuda:nccl" with CUDA, "gloo" without): initialise yours in a session fixture
guarded by ``torch.distributed.is_initialized()``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

# A rank that stops calling in (a test skipped on one rank only) turns a hang into an error.
TIMEOUT = timedelta(minutes=10)


class TorchDistributed:
    def __init__(self) -> None:
        if not dist.is_initialized():
            backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend, timeout=TIMEOUT)
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self._group = dist.new_group(backend="gloo", timeout=TIMEOUT)

    def max(self, value: int) -> int:
        tensor = torch.tensor([value], dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self._group)
        return int(tensor.item())

    def any(self, flag: bool) -> bool:
        return self.max(int(flag)) > 0

    def gather(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """Every rank's payload (plain JSON data), as JSON bytes in uint8 tensors: not
        all_gather_object, which needs numpy, and pickles."""
        data = json.dumps(payload).encode()
        length = self.max(len(data))
        buffer = torch.zeros(length, dtype=torch.uint8)
        buffer[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        out = [torch.empty(length, dtype=torch.uint8) for _ in range(self.world_size)]
        dist.all_gather(out, buffer, group=self._group)
        return [json.loads(bytes(t.tolist()).rstrip(b"\0")) for t in out]
