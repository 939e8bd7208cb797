"""Hooks the plugin offers to conftest files and other plugins."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec(firstresult=True)
def pytest_gpuperf_make_backend(config: pytest.Config, settings: Any) -> Any:
    """Return the backend that times calls (see pytest_gpuperf.measuring.backend.Backend), or None
    for the default: CUDA events on a GPU, else the host clock. A replay backend here
    makes a suite's own tests of its budgets GPU-free."""


@pytest.hookspec(firstresult=True)
def pytest_gpuperf_machine_key(config: pytest.Config, env: Any) -> str | None:
    """Return the folder name under the baselines directory for this machine, or None
    for the default: the device name in lowercase and dashes (nvidia-h100-80gb-hbm3).
    ``env`` is the backend's EnvInfo (device, driver, cuda, torch). Baselines are still
    compared only where driver, CUDA and torch match what they were recorded with."""
