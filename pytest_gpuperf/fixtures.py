"""The gpu_profiler fixture."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import pytest

from pytest_gpuperf.session import SESSION_KEY, GpuperfSession, nvtx_range

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
        if items is not None and (isinstance(items, bool) or not isinstance(items, (int, float)) or items <= 0):
            raise ValueError(f"gpu_profiler: items must be a positive number, not {items!r}")
        if self._session is None or not self._session.active:
            return fn(*args, **kwargs)
        last: list[T] = []

        def step() -> None:
            last[:] = [fn(*args, **kwargs)]

        self._session.measure(self._item, step, items)
        return last[0]

    def region(self, name: str) -> AbstractContextManager[Any]:
        """An NVTX range around part of a step, shown by name in Nsight Systems."""
        return nvtx_range(name)


@pytest.fixture
def gpu_profiler(request: pytest.FixtureRequest) -> GpuProfiler:
    """Measure a step: ``gpu_profiler(step, *args, items=None, **kwargs)``."""
    return GpuProfiler(request.node, request.config.stash.get(SESSION_KEY, None))
