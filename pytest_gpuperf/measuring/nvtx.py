"""NVTX ranges (the nvtx package), so ``nsys profile pytest --gpuperf`` shows each measurement
and each ``gpu_profiler.region`` by name."""

from __future__ import annotations

import functools
import warnings
from contextlib import AbstractContextManager, nullcontext
from types import ModuleType
from typing import Any


@functools.cache
def _nvtx() -> ModuleType | None:
    """The nvtx module, or None: said once per process, not once per range."""
    try:
        import nvtx
    except ImportError:
        warnings.warn("pytest-gpuperf: the nvtx package is missing: no NVTX ranges", stacklevel=3)
        return None
    found: ModuleType = nvtx
    return found


def nvtx_range(name: str) -> AbstractContextManager[Any]:
    module = _nvtx()
    if module is None:
        return nullcontext()
    range_: AbstractContextManager[Any] = module.annotate(name)
    return range_


def nvtx_push(name: str) -> None:
    """Open a range that :func:`nvtx_pop` closes (for ranges a ``with`` block cannot span)."""
    module = _nvtx()
    if module is not None:
        module.push_range(name)


def nvtx_pop() -> None:
    module = _nvtx()
    if module is not None:
        module.pop_range()
