"""The base of every error pytest-gpuperf raises that a user may catch; it imports nothing, so
every layer may use it."""

from __future__ import annotations


class GpuperfError(Exception):
    """Each module's own subclass says what went wrong: a malformed trace, baseline, budget or
    report, a failed measurement, a CUDA graph or KV pool that cannot serve."""
