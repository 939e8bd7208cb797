"""Shared test helpers: settings for quick measurements and pytester runs (imported by test
modules; no test module imports another)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_gpuperf.judging.baseline import Machine
from pytest_gpuperf.judging.entry import Entry
from pytest_gpuperf.measuring.config import ProtocolConfig
from pytest_gpuperf.settings import OPTIONS, Settings
from tests.conftest import REPO_ON_PATH
from tests.traces import DATA

DEFAULT_SETTINGS = Settings(**{o.name: o.default for o in OPTIONS})
DEFAULTS = DEFAULT_SETTINGS.protocol()  # the protocol as a run with no options measures
QUICK = ProtocolConfig(warmup_calls=5, warmup_ms=20.0, rounds=3, round_ms=10.0, max_rounds=5, profile_steps=3)

# Command-line flags for pytester runs that measure quickly.
FAST = ["--gpuperf-warmup-ms", "1", "--gpuperf-round-ms", "1", "--gpuperf-rounds", "3", "--gpuperf-max-rounds", "6"]

H100 = Machine("NVIDIA H100 80GB HBM3", "580.159.04", "13.0", "2.11.0+cu130")
ENTRY = Entry.of(samples=10, p50_ms=1.0, p99_ms=1.1, p99_ci_ms=(1.05, 1.2), round_medians_ms=(1.0, 1.01, 0.99))


def replay_conftest(pytester: pytest.Pytester, samples: str, trace: str | Path | None = "decode_eager") -> None:
    """A conftest whose backend replays ``samples`` (a Python list, as text) and hands out
    ``trace`` as its profiled pass: a recorded trace's name in tests/data/traces, a file, or none."""
    path = DATA / f"{trace}.json.gz" if isinstance(trace, str) else trace
    trace_arg = f"Path({str(path)!r})" if path is not None else "None"
    pytester.makeconftest(
        f"""
        from pathlib import Path
        {REPO_ON_PATH}
        from tests.replay import ReplayBackend

        def pytest_gpuperf_make_backend(config, settings):
            return ReplayBackend({samples}, trace={trace_arg})
        """
    )
