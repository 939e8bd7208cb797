"""Which backend times a run: a conftest's (pytest_gpuperf_make_backend), CUDA events where a GPU
is, else the host clock, with the header's note and usage errors that say what to do."""

from __future__ import annotations

import importlib.util

import pytest

from pytest_gpuperf.measuring.backend import Backend
from pytest_gpuperf.measuring.hostclock import HostClockBackend
from pytest_gpuperf.settings import Settings


def choose_backend(config: pytest.Config, settings: Settings) -> tuple[Backend, str | None]:
    """The backend to measure with, and a note for the header; usage errors say what to do."""
    if importlib.util.find_spec("torch") is None:
        raise pytest.UsageError("--gpuperf needs PyTorch, which is not installed: pip install torch")
    custom = config.hook.pytest_gpuperf_make_backend(config=config, settings=settings)
    if custom is not None:
        return custom, None
    from pytest_gpuperf.cuda.host import cuda_missing, torch_threads

    device, require = settings.gpuperf_device, settings.gpuperf_require_gpu
    if device == "cpu":
        if require:
            raise pytest.UsageError("--gpuperf-require-gpu contradicts --gpuperf-device cpu")
        note = "timing with the host clock (--gpuperf-device cpu): GPU metrics are unavailable"
        return HostClockBackend(torch_threads()), note
    why = cuda_missing()
    if why is None:
        from pytest_gpuperf.cuda.backend import CudaBackend

        return CudaBackend(flush_l2=settings.gpuperf_flush_l2), None
    if device == "cuda" or require:
        flag = "--gpuperf-device cuda" if device == "cuda" else "--gpuperf-require-gpu"
        raise pytest.UsageError(f"{flag}: {why}")
    note = (
        f"{why}: timing with the host clock; GPU metrics are unavailable, and latency budgets "
        "(stated for a GPU) are reported, not judged (--gpuperf-device cpu judges them)"
    )
    return HostClockBackend(torch_threads()), note
