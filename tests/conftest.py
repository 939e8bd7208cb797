from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# The first line of a pytester conftest that imports from ``tests``: pytester runs, their
# subprocesses and pytest-xdist workers (whose sys.path is the controller's at its start)
# find the repository however the outer pytest was started (`pytest` or `python -m pytest`).
REPO_ON_PATH = f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    cpu_items = [item for item in items if item.get_closest_marker("no_cuda")]
    if not gpu_items and not cpu_items:
        return
    import torch  # only when such tests were collected

    if torch.cuda.is_available():
        skip, skipped = pytest.mark.skip(reason="checks behaviour without CUDA; this machine has it"), cpu_items
    else:
        skip, skipped = pytest.mark.skip(reason="needs a CUDA GPU: run on a CUDA machine (see README)"), gpu_items
    for item in skipped:
        item.add_marker(skip)
