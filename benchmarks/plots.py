"""The one way the benchmark reports draw and save a PNG (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def png(path: Path, **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """``with png(path, figsize=(7, 3)) as (fig, ax):`` draw; on leaving, laid out and saved."""
    import matplotlib

    matplotlib.use("Agg")  # no display on the GPU machine or in CI
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(**subplots)
    yield fig, axes
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
