"""pytest-gpuperf: GPU performance stated as pytest tests.

The analysis core (trace loading, metrics, bottleneck classification) is pure
Python; only ``pytest_gpuperf.cuda`` imports torch, and only when measuring.
"""

from pytest_gpuperf.metrics import analyze
from pytest_gpuperf.trace import TraceFormatError, load

__all__ = ["TraceFormatError", "analyze", "load"]
__version__ = "0.1.0"
