from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    cpu_items = [item for item in items if item.get_closest_marker("no_cuda")]
    if not gpu_items and not cpu_items:
        return
    import torch  # only when such tests were collected

    if torch.cuda.is_available():
        skip, skipped = pytest.mark.skip(reason="checks behaviour without CUDA; this machine has it"), cpu_items
    else:
        skip, skipped = pytest.mark.skip(reason="needs a CUDA GPU: run on the lent device (see README)"), gpu_items
    for item in skipped:
        item.add_marker(skip)
