"""The pytest plugin entry point (``pytest11: gpuperf``).

Loaded in every pytest run of an environment that has the package, so it
imports nothing heavy: no torch here, ever. It declares the markers the plugin
owns; measuring (``--gpuperf``) builds on this module.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "gpu_budget(p50_ms=, p99_ms=, gpu_active_pct_min=, dispatch_ratio_max=, peak_mem_mb=, nccl_pct_max=, "
        "kernels_per_step_max=, items_per_s_min=): the GPU performance this test must meet",
    )
