"""A time limit for one measurement (``--gpuperf-timeout``): a step that never returns
fails its test instead of hanging the run.

SIGALRM interrupts Python code, sleeps and most blocking calls in the main thread (as
pytest-timeout's signal method does). Where there is no SIGALRM (Windows), off the main
thread, or where another timer already runs (pytest-timeout's), no limit is set here.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from pytest_gpuperf.errors import GpuperfError


class MeasurementTimeout(GpuperfError):
    """A measurement ran past --gpuperf-timeout."""


@contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return
    started = time.monotonic()

    def expire(signum: int, frame: FrameType | None) -> None:
        raise MeasurementTimeout(
            f"{what}: the measurement ran {time.monotonic() - started:.1f} s, past the {seconds:g} s limit "
            "(--gpuperf-timeout): the step did not return, or calls are far slower than the warmup suggested"
        )

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
