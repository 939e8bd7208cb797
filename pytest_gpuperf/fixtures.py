"""The fixtures: gpu_profiler, cuda_graph and kv_pool (the last two import torch when used)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_gpuperf.judging.text import brief, finite
from pytest_gpuperf.measuring.nvtx import nvtx_range
from pytest_gpuperf.stash import SESSION_KEY

if TYPE_CHECKING:
    from pytest_gpuperf.session import GpuperfSession

T = TypeVar("T")


class GpuProfiler:
    """``gpu_profiler(fn, *args, items=None, **kwargs)`` returns ``fn(*args, **kwargs)``.

    Under ``--gpuperf`` the call is measured (warmup, timed rounds, one profiled
    pass) and checked against the test's gpu_budget; the value returned is that of
    the last call. Without ``--gpuperf`` it is one plain call. ``items`` is the
    work per call (tokens, samples) for throughput.
    """

    def __init__(self, item: pytest.Item, session: GpuperfSession | None) -> None:
        self._item = item
        self._session = session

    def __call__(self, fn: Callable[..., T], *args: Any, items: float | None = None, **kwargs: Any) -> T:
        check_items(items)
        if self._session is None:  # no --gpuperf: one plain call
            return fn(*args, **kwargs)
        last: list[T] = []

        def step() -> None:
            last[:] = [fn(*args, **kwargs)]

        self._session.measure(self._item, step, items)
        return last[0]

    def region(self, name: str) -> AbstractContextManager[Any]:
        """An NVTX range around part of a step, shown by name in Nsight Systems."""
        return nvtx_range(name)


def check_items(items: object) -> None:
    """``items=`` is work per call: a finite number above 0 (NaN or inf would be written
    into a baseline that could then not be read back)."""
    if items is None:
        return
    number = finite(items)
    if number is None or number <= 0:
        raise ValueError(f"gpu_profiler: items must be a finite number above 0, not {brief(items)}")


@pytest.fixture
def gpu_profiler(request: pytest.FixtureRequest) -> GpuProfiler:
    """Measure a step: ``gpu_profiler(step, *args, items=None, **kwargs)``."""
    session: GpuperfSession | None = request.config.stash.get(SESSION_KEY, None)
    return GpuProfiler(request.node, session)


@pytest.fixture
def cuda_graph() -> Callable[..., Any]:
    """Capture a step as a CUDA graph: ``g = cuda_graph(step, *example_inputs, batch_sizes=None)``;
    ``g(*inputs)`` copies the inputs into static buffers, replays and returns the static outputs.
    Skips the test where torch sees no CUDA device."""
    from pytest_gpuperf.cuda.host import cuda_missing, torch_version

    if cuda_missing() is not None:
        pytest.skip(f"cuda_graph needs a CUDA device; torch {torch_version()} sees none")
    from pytest_gpuperf.cuda.graphs import CudaGraphStep

    def capture(step: Callable[..., Any], *example_inputs: Any, **options: Any) -> CudaGraphStep:
        return CudaGraphStep(step, *example_inputs, **options)

    return capture


@pytest.fixture
def kv_pool() -> Callable[..., Any]:
    """Make a preallocated paged KV-cache pool: ``kv_pool(num_blocks=, num_layers=, num_kv_heads=,
    block_size=, head_dim=, dtype=, device=)``; without ``device=``, CUDA where torch sees it, else the CPU."""
    from pytest_gpuperf.cuda.kv_pool import KVPool

    def make(**options: Any) -> KVPool:
        return KVPool(**options)

    return make
