"""pytest-gpuperf: GPU performance stated as pytest tests.

The analysis core (trace loading, metrics, bottleneck classification) is pure
Python; only ``pytest_gpuperf.cuda`` imports torch, and only when measuring.
Loading the pytest plugin imports none of them: every name below is imported on
first use, the error classes too (``from pytest_gpuperf import KVPoolExhausted``
imports torch, as making a pool does).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_gpuperf.analysis.load import load
    from pytest_gpuperf.analysis.metrics import analyze
    from pytest_gpuperf.analysis.trace import TraceFormatError
    from pytest_gpuperf.cuda.graphs import GraphCaptureError
    from pytest_gpuperf.cuda.kv_pool import KVPoolError, KVPoolExhausted
    from pytest_gpuperf.errors import GpuperfError
    from pytest_gpuperf.judging.baseline import BaselineError
    from pytest_gpuperf.judging.budget import BudgetError
    from pytest_gpuperf.judging.runs import RunReportError
    from pytest_gpuperf.measuring.deadline import MeasurementTimeout
    from pytest_gpuperf.measuring.generation import GenerationError
    from pytest_gpuperf.measuring.protocol import MeasurementError

from pytest_gpuperf.version import __version__ as __version__

# name -> the module that defines it
_LAZY = {
    "analyze": "pytest_gpuperf.analysis.metrics",
    "load": "pytest_gpuperf.analysis.load",
    "TraceFormatError": "pytest_gpuperf.analysis.trace",
    "GpuperfError": "pytest_gpuperf.errors",
    "BaselineError": "pytest_gpuperf.judging.baseline",
    "RunReportError": "pytest_gpuperf.judging.runs",
    "GenerationError": "pytest_gpuperf.measuring.generation",
    "BudgetError": "pytest_gpuperf.judging.budget",
    "MeasurementError": "pytest_gpuperf.measuring.protocol",
    "MeasurementTimeout": "pytest_gpuperf.measuring.deadline",
    "GraphCaptureError": "pytest_gpuperf.cuda.graphs",
    "KVPoolError": "pytest_gpuperf.cuda.kv_pool",
    "KVPoolExhausted": "pytest_gpuperf.cuda.kv_pool",
}
__all__ = [
    "BaselineError",
    "BudgetError",
    "GenerationError",
    "GpuperfError",
    "GraphCaptureError",
    "KVPoolError",
    "KVPoolExhausted",
    "MeasurementError",
    "MeasurementTimeout",
    "RunReportError",
    "TraceFormatError",
    "analyze",
    "load",
]
assert sorted(__all__) == sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pytest_gpuperf' has no attribute {name!r}")
