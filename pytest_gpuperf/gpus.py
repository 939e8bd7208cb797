"""One GPU per pytest-xdist worker, and measurement serialised where workers share one.

Two measured tests on one GPU time each other's kernels. So under ``pytest -n N --gpuperf``
each worker is given a GPU before CUDA starts in it (CUDA_VISIBLE_DEVICES, set while pytest
configures the worker): worker i gets GPU i modulo the GPUs there are. Where there are
fewer GPUs than workers, a measurement holds a lock on its GPU (a file lock shared by the
run's workers), so measurements on one GPU take turns while unmeasured tests run in
parallel. The GPUs are ``--gpuperf-gpus`` (ids), else those CUDA_VISIBLE_DEVICES names,
else those NVML counts; none found: nothing is assigned.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; measurements are then not serialised
    fcntl = None  # type: ignore[assignment]


def parse_gpus(text: str) -> list[str]:
    """``"0,1"`` -> ``["0", "1"]``; ids or UUIDs, as CUDA_VISIBLE_DEVICES takes them."""
    gpus = [part.strip() for part in text.split(",") if part.strip()]
    if not gpus:
        raise ValueError(f"expected GPU ids separated by commas, not {text!r}")
    return gpus


def visible_gpus(option: str | None, environ: Mapping[str, str]) -> list[str]:
    if option:
        return parse_gpus(option)
    if environ.get("CUDA_VISIBLE_DEVICES", "").strip():
        return parse_gpus(environ["CUDA_VISIBLE_DEVICES"])
    return [str(i) for i in range(_nvml_count())]


def _nvml_count() -> int:
    """GPUs NVML sees, without starting CUDA in this process; 0 without a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVML library or driver: a CPU machine
        return 0


def worker_index(environ: Mapping[str, str]) -> int | None:
    """This pytest-xdist worker's index (gw3 -> 3); None outside a worker."""
    name = environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else None


def assign(gpus: list[str], worker: int) -> str:
    return gpus[worker % len(gpus)]


HOST_CPU = "cpu"  # the "device" workers without a GPU share: its lock serialises their measurements


@contextmanager
def gpu_turn(lock_dir: Path | None, gpu: str | None) -> Iterator[None]:
    """Hold the GPU's lock while measuring (where workers share it); elsewhere a no-op."""
    if lock_dir is None or gpu is None or fcntl is None:
        yield
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"gpu-{gpu.replace('/', '_')}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_dir() -> Path:
    """The folder of GPU locks: one per user, shared by every run, so none piles up in the
    temporary folder (and two runs measuring on one GPU take turns too)."""
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"gpuperf-locks-{user}"
