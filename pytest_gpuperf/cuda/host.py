"""What torch says about this machine, for choosing a backend (imports torch: only when measuring)."""

from __future__ import annotations

import torch


def cuda_missing() -> str | None:
    """Why CUDA cannot be used here, or None where it can."""
    if torch.cuda.is_available():
        return None
    return f"torch {torch_version()} sees no CUDA device"


def torch_version() -> str:
    return str(torch.__version__)


def torch_threads() -> int:
    """torch's intra-op threads: a CPU step's time depends on them."""
    return int(torch.get_num_threads())
