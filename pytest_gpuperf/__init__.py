"""pytest-gpuperf: GPU performance stated as pytest tests.

The analysis core (trace loading, metrics, bottleneck classification) is pure
Python; only ``pytest_gpuperf.cuda`` imports torch, and only when measuring.
Loading the pytest plugin imports none of them: ``load`` and ``analyze`` are
imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_gpuperf.metrics import analyze
    from pytest_gpuperf.trace import TraceFormatError, load

__all__ = ["TraceFormatError", "analyze", "load"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "analyze":
        from pytest_gpuperf.metrics import analyze

        return analyze
    if name in ("load", "TraceFormatError"):
        from pytest_gpuperf import trace

        return getattr(trace, name)
    raise AttributeError(f"module 'pytest_gpuperf' has no attribute {name!r}")
