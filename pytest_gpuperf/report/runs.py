"""``gpuperf compare``'s text: one line per test, then what decided each changed test."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_gpuperf.judging.compare import SAME
from pytest_gpuperf.judging.runs import TestChange
from pytest_gpuperf.judging.text import printable


def render_runs(changes: Sequence[TestChange], names: tuple[str, str]) -> str:
    rows = [("test", f"p50 ms {names[0]}", f"p50 ms {names[1]}", "change")]
    details = []
    for change in changes:
        c = change.comparison
        latency = c.latency if c is not None else None
        if c is None or latency is None:
            rows.append((change.test, "-", "-", f"not compared ({change.reason})"))
            continue
        rows.append((change.test, f"{latency.baseline:.4f}", f"{latency.current:.4f}", c.summary()))
        if c.status != SAME:
            details.append(f"{change.test}: {c.status}")
            details += [f"  {m.describe()}" for m in c.changes if m.gated and m.outcome != SAME]
            if c.kernels_added:
                details.append(f"  kernels that appeared: {', '.join(c.kernels_added)}")
            if c.kernels_removed:
                details.append(f"  kernels that disappeared: {', '.join(c.kernels_removed)}")
            details += [f"  kernel time: {k.describe()}" for k in c.kernel_changes]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join([r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2]), r[3]]).rstrip() for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    statuses = [c.comparison.status for c in changes if c.comparison is not None]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    lines.append(f"{len(changes)} tests: {counts or 'none compared'}; {len(changes) - len(statuses)} not compared")
    if details:
        lines += ["", *details]
    return "\n".join(printable(line) for line in lines)
