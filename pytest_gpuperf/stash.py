"""What the plugin keeps on pytest's objects, and its warning class: a module of its own so the
entry point imports them without the session, which pulls in the whole measuring stack (every
pytest run loads the entry point; only --gpuperf needs the rest)."""

from __future__ import annotations

from typing import Any

import pytest

# The session and its results are typed where they are read: naming their classes here would
# import the session back (a cycle the layer test refuses).
SESSION_KEY = pytest.StashKey[Any]()  # the GpuperfSession, set only under --gpuperf
BUDGET_KEY = pytest.StashKey[dict[str, float]]()
TOLERANCE_KEY = pytest.StashKey[float]()  # percent, from @pytest.mark.gpu_baseline(tolerance_pct=...)
RESULTS_KEY = pytest.StashKey[list[Any]]()  # each measurement's result.Result, in order


class GpuperfWarning(pytest.PytestWarning):
    """A measurement that could not be judged against its baseline (too noisy to tell), or
    gpuperf options given without --gpuperf."""
