"""pytest-xdist: workers measure; the controller reports and writes the baselines.

A worker sends, at its session end, its report rows, the baseline entries it staged
and what it collected; the controller merges them, so baselines are written once,
by one process, at the end of the whole run.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pytest_gpuperf.judging.baseline import entry_from_dict, entry_to_dict

if TYPE_CHECKING:
    from pytest_gpuperf.session import GpuperfSession

KEY = "gpuperf"


def payload(session: GpuperfSession) -> dict[str, Any]:
    """What a worker sends: plain data that execnet can carry."""
    staged = session.baselines.staged if session.baselines is not None else {}
    data = {
        "results": session.results(),
        "staged": {m: {t: entry_to_dict(e) for t, e in tests.items()} for m, tests in staged.items()},
        "collected": {m: sorted(tests) for m, tests in session.collected.items()},
        "narrowed": sorted(session.narrowed),
        "deselected": session.deselected,
    }
    # Through JSON: execnet carries only builtin types (no list subclasses, no dataclasses).
    plain: dict[str, Any] = json.loads(json.dumps(data))
    return plain


def merge(session: GpuperfSession, worker_output: dict[str, Any]) -> None:
    data = worker_output.get(KEY)
    if not data:
        return
    session.remote.extend(data["results"])
    store = session.store()
    for module, tests in data["staged"].items():
        for test, entry in tests.items():
            store.stage(module, test, entry_from_dict(entry))
    for module, tests in data["collected"].items():
        session.collected.setdefault(module, set()).update(tests)
    session.narrowed.update(data["narrowed"])
    # Every worker collects the whole suite, so each reports the same deselection.
    session.deselected = max(session.deselected, data["deselected"])
