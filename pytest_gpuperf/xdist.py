"""pytest-xdist: workers measure; the controller reports and writes the baselines.

A worker sends, at its session end, its report rows, the baseline entries it staged and its
coverage; the controller's relay takes them in, so baselines are written once, by one
process, at the end of the whole run, and a worker that dies is named with what was lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pytest_gpuperf.judging.baseline import BaselineStore, entry_from_dict, entry_to_dict
from pytest_gpuperf.judging.entry import Entry
from pytest_gpuperf.judging.text import count
from pytest_gpuperf.report.rows import Row

KEY = "gpuperf"  # the key of a worker's results in pytest-xdist's workeroutput


def worker_payload(rows: list[Row], staged: dict[str, dict[str, Entry]], coverage: dict[str, Any]) -> dict[str, Any]:
    """What a worker sends: builtin types only (execnet carries no dataclasses)."""
    data = {
        "rows": [r.to_wire() for r in rows],
        "staged": {m: {t: entry_to_dict(e) for t, e in tests.items()} for m, tests in staged.items()},
        "coverage": coverage,
    }
    # Through JSON: execnet carries only builtin types (no list subclasses such as the YAML flow lists).
    plain: dict[str, Any] = json.loads(json.dumps(data))
    return plain


class Relay:
    """On the controller: the rows workers sent, and the workers that ended without sending."""

    def __init__(self, store: Callable[[], BaselineStore], merge_coverage: Callable[[dict[str, Any]], None]) -> None:
        """``store`` opens the session's baseline store; ``merge_coverage`` takes in a worker's coverage."""
        self._store = store
        self._merge_coverage = merge_coverage
        self.rows: list[Row] = []
        self.lost: list[str] = []
        self._measured_on: dict[str, list[str]] = {}  # worker id -> tests it measured

    def take(self, data: dict[str, Any]) -> None:
        self.rows.extend(Row.from_wire(r) for r in data["rows"])
        store = self._store()
        for module, tests in data["staged"].items():
            for test, entry in tests.items():
                store.stage(module, test, entry_from_dict(entry))
        self._merge_coverage(data["coverage"])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Note which worker measured which test, so a worker that dies before sending its
        results can be named with what was lost."""
        node = getattr(report, "node", None)  # set by pytest-xdist on reports from workers
        if node is None or report.when != "call" or not hasattr(node, "gateway"):
            return
        if any(name.endswith("_p50_ms") for name, _ in report.user_properties):
            self._measured_on.setdefault(node.gateway.id, []).append(report.nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Take in what a worker measured."""
        output = getattr(node, "workeroutput", None)
        measured = self._measured_on.pop(node.gateway.id, [])
        if output and output.get(KEY):
            self.take(output[KEY])
        elif measured:
            self.lost.append(
                f"worker {node.gateway.id} ended without sending its results ({error or 'it crashed'}): "
                f"the measurements of {count(len(measured), 'test')} are lost (no row, no baseline written): "
                + ", ".join(measured)
            )
