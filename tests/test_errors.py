"""Every error a user may catch has one base, and each is exported by the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_gpuperf
from pytest_gpuperf import GpuperfError

PACKAGE = Path(pytest_gpuperf.__file__).parent


def _error_classes() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Exhausted", "Timeout")):
                found.add(node.name)
    return found - {"GpuperfError"}


def test_every_error_class_is_exported_and_a_gpuperf_error() -> None:
    names = _error_classes()
    assert names == {
        "BaselineError", "BudgetError", "GenerationError", "GraphCaptureError", "KVPoolError",
        "KVPoolExhausted", "MeasurementError", "MeasurementTimeout", "RunReportError", "TraceFormatError",
    }  # fmt: skip
    for name in sorted(names - {"GraphCaptureError", "KVPoolError", "KVPoolExhausted"}):  # these import torch
        assert name in pytest_gpuperf.__all__
        assert issubclass(getattr(pytest_gpuperf, name), GpuperfError), name
    assert {"GraphCaptureError", "KVPoolError", "KVPoolExhausted"} <= set(pytest_gpuperf.__all__)


def test_the_cuda_errors_are_gpuperf_errors_too() -> None:
    for name in ("GraphCaptureError", "KVPoolError", "KVPoolExhausted"):
        assert issubclass(getattr(pytest_gpuperf, name), GpuperfError), name  # imports torch: CPU build here
