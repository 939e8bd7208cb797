"""The JSON report (``--gpuperf-json``): strict JSON, keys sorted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_gpuperf.analysis.results import finite_json
from pytest_gpuperf.judging.baseline import write_atomic
from pytest_gpuperf.report.rows import Row


def json_safe(value: Any) -> Any:
    """``value`` with every infinite or NaN float as None: strict JSON has no such numbers
    (a count that grew from 0 has an infinite ratio)."""
    return finite_json(value)[0]


def write_json(
    path: Path, *, settings: dict[str, Any], note: str | None, rows: Sequence[Row], run: dict[str, Any]
) -> None:
    """The JSON report: the run (when, which commit, on what), its settings, the header's note
    and every row's object."""
    payload = {"run": run, "settings": settings, "note": note, "tests": [r.json for r in rows]}
    write_atomic(path, json.dumps(json_safe(payload), indent=2, sort_keys=True, allow_nan=False) + "\n")
