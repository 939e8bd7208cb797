"""The metric reference (docs/metrics.md), written from the registry: the docs cannot drift from
the code (a test compares the file with this output).

    python -m pytest_gpuperf.report.reference > docs/metrics.md
"""

from __future__ import annotations

from pytest_gpuperf.judging.registry import (
    EXACT,
    INTERVAL,
    KEPT,
    METRICS,
    NOT_KEPT,
    POINT,
    REPORTED,
    Metric,
)

COMPARED = {
    INTERVAL: "gated: the ratio's 95% interval from per-round (per-call) medians",
    POINT: "gated past the tolerance",
    EXACT: "gated: compared exactly",
    REPORTED: "reported, not gated",
    KEPT: "kept in the baseline, not compared",
    NOT_KEPT: "a budget's figure; not kept in baselines",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _comparison(m: Metric) -> str:
    if m.compared == REPORTED and m.note:
        return m.note
    text = COMPARED[m.compared]
    if m.compared == POINT and m.min_tolerance_pct:
        text += f" (at least {m.min_tolerance_pct:g}%)"
    if m.floor:
        text += f"; not gated under {m.floor:g} {m.unit}".rstrip()
    if m.note:
        text += f"; {m.note}"
    return text


def metrics_markdown() -> str:
    lines = [
        "# Metrics",
        "",
        "Every metric gpuperf measures, from the registry in `pytest_gpuperf/judging/registry.py`",
        "(this page is its output: `python -m pytest_gpuperf.report.reference > docs/metrics.md`).",
        "A metric's `gpu_budget` key bounds it in a test; a baseline keeps it under its name;",
        "the gate is the part of the verdict it belongs to (the report says which gates decided).",
        "Higher is better where the arrow points up.",
        "",
        "| metric | unit | better | source | budget key | gate | baseline comparison | what it is |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in METRICS:
        lines.append(
            f"| `{m.name}` | {m.unit or '-'} | {'↑' if m.higher_is_better else '↓'} | {m.source} | "
            f"{f'`{m.budget}`' if m.budget else '-'} | {m.gate or '-'} | {_cell(_comparison(m))} | {_cell(m.doc)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(metrics_markdown(), end="")
