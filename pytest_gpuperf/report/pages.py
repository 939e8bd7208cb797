"""Reports to look at rather than read: ``--gpuperf-markdown`` (a CI summary, such as a GitHub
Actions step summary) and ``--gpuperf-html`` (one self-contained page: no server, no script,
no file beside it). Both are made from the rows' JSON objects, as the JSON report holds them,
so pytest-xdist workers' tests are in them too."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_gpuperf.judging.baseline import write_atomic
from pytest_gpuperf.report.rows import Row
from pytest_gpuperf.report.terminal import kernel_list, shown_kernel_names

FAILED = "FAIL"


# C0 control characters but tab and newline, DEL and the C1 range: an ESC or BEL in a kernel name
# or a test id reaches a terminal that renders the page's text, and HTML does not allow them.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: Any) -> str:
    """``text`` as a str without control characters (tab and newline kept)."""
    return _CONTROL.sub("", str(text))


def _esc(text: Any) -> str:
    """Text for HTML: control characters removed, markup escaped."""
    return html.escape(clean(text))


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def _headline(tests: Sequence[dict[str, Any]], run: dict[str, Any]) -> str:
    failed = sum(1 for t in tests if t["verdict"] == FAILED)
    regressed = sum(1 for t in tests if t["baseline"]["status"] == "regressed")
    where = run.get("device") or "the host"
    commit = f" at {str(run['git_commit'])[:12]}" if run.get("git_commit") else ""
    return f"{len(tests)} measured on {where}{commit}: {failed} failed, {regressed} regressed against their baselines"


def _bottleneck(test: dict[str, Any]) -> str:
    found = test.get("bottleneck")
    return str(found["kind"]) if found else "-"


# --- Markdown ------------------------------------------------------------------------------------


def markdown(rows: Sequence[Row], run: dict[str, Any]) -> str:
    tests = [r.json for r in rows]
    lines = [f"### gpuperf: {_cell(_headline(tests, run))}", ""]
    lines += ["| test | p50 ms | p99 ms | against baseline | bottleneck | verdict |", "|---|---:|---:|---|---|---|"]
    for t in tests:
        mark = ":x: " if t["verdict"] == FAILED else ""
        lines.append(
            f"| {_code(t['test'])} | {_number(t['p50_ms']['value'])} | {_number(t['p99_ms']['value'])} | "
            f"{_cell(t['baseline']['summary'])} | {_cell(_bottleneck(t))} | {mark}{_cell(t['verdict'])} |"
        )
    for t in tests:
        if t.get("failure"):
            failure = clean(t["failure"])
            fence = "`" * max(3, _longest_backtick_run(failure) + 1)
            lines += ["", f"<details><summary>{_esc(t['test'])}</summary>", "", fence, failure, fence]
            lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text for a Markdown table cell: markup and HTML escaped, as GitHub would otherwise render
    them; a pipe would end the cell."""
    escaped = re.sub(r"([\\`*_\[\]<>&~])", r"\\\1", clean(text))
    return escaped.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """A code span for a table cell that no backtick in ``text`` can end (CommonMark: a longer
    fence), its pipes escaped, as GitHub's tables need even inside code."""
    body = clean(text).replace("\n", " ")
    fence = "`" * (_longest_backtick_run(body) + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}".replace("|", "\\|")


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall("`+", text)), default=0)


def write_markdown(path: Path, rows: Sequence[Row], run: dict[str, Any]) -> None:
    # Appended, not replaced: a GitHub Actions step summary file collects every step's part. The
    # whole file is written anew and renamed into place, so a full disk leaves it as it was.
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    write_atomic(path, before + markdown(rows, run))


# --- HTML -----------------------------------------------------------------------------------------

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 20px; } h2 { font-size: 15px; margin: 0; font-family: ui-monospace, monospace; }
section { background: #fff; border: 1px solid #ddd; border-left: 6px solid #2e7d32; border-radius: 6px;
  padding: 12px 16px; margin: 14px 0; }
section.fail { border-left-color: #c62828; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; background: #2e7d32;
  font-size: 12px; margin-left: 8px; }
.fail .badge { background: #c62828; }
table { border-collapse: collapse; margin: 6px 0; } td, th { padding: 2px 10px 2px 0; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f3f3f3; padding: 8px; overflow-x: auto; font-size: 12px; }
code { overflow-wrap: anywhere; }
.muted { color: #666; } svg text { font: 11px system-ui, sans-serif; fill: #333; }
"""


def page(rows: Sequence[Row], run: dict[str, Any]) -> str:
    tests = [r.json for r in rows]
    about = ", ".join(f"{k} {_esc(str(v))}" for k, v in run.items() if v not in (None, ""))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>gpuperf report</title>',
        f"<style>{STYLE}</style></head><body>",
        f"<h1>gpuperf: {_esc(_headline(tests, run))}</h1>",
        f'<p class="muted">{about}</p>',
    ]
    parts += [_test_section(t) for t in tests]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(path: Path, rows: Sequence[Row], run: dict[str, Any]) -> None:
    write_atomic(path, page(rows, run))


def _test_section(t: dict[str, Any]) -> str:
    failed = t["verdict"] == FAILED
    b = t["baseline"]
    out = [
        f'<section class="{"fail" if failed else "pass"}">',
        f'<h2>{_esc(t["test"])}<span class="badge">{_esc(t["verdict"])}</span></h2>',
        "<table>",
        _figure_row("p50", t["p50_ms"]),
        _figure_row("p99", t["p99_ms"]),
        *_generation_rows(t.get("generation")),
        f'<tr><td>against baseline</td><td colspan="2">{_esc(str(b["summary"]))}</td></tr>',
        "</table>",
        _rounds_plot(t.get("round_medians_ms") or [], b.get("baseline_rounds_ms") or []),
    ]
    latency = next((c for c in b.get("changes", []) if c["metric"] == "p50_ms"), None)
    if latency is not None:
        out.append(_ratio_plot(latency, b["tolerance_pct"]))
    out += _budgets(t.get("budgets", []))
    out += _changes(b)
    out += _bottleneck_html(t.get("bottleneck"))
    for problem in (t.get("trace") or {}).get("trust", []) or []:
        out.append(f'<p class="muted">trace unreliable: {_esc(problem["detail"])}</p>')
    if t.get("failure"):
        out.append(f"<pre>{_esc(t['failure'])}</pre>")
    out.append("</section>")
    return "\n".join(out)


def _generation_rows(g: dict[str, Any] | None) -> list[str]:
    """A generation's TTFT and TPOT medians and the pooled gaps' p99, each with its interval."""
    if g is None:
        return []
    rows = []
    for label, metric, percentile in (
        ("TTFT p50", "ttft_ms", "p50"),
        ("TPOT p50", "tpot_ms", "p50"),
        ("ITL p99", "itl_ms", "p99"),
    ):
        spread = g.get(metric)
        if spread is None:
            continue
        estimate = spread[percentile]
        if estimate["supported"]:
            rows.append(_figure_row(label, estimate))
        else:
            shown = f'<td class="n">{_number(estimate["value"])} ms</td>'
            rows.append(
                f'<tr><td>{label}</td>{shown}<td class="muted">unsupported: {spread["samples"]} samples</td></tr>'
            )
    return rows


def _figure_row(label: str, estimate: dict[str, Any]) -> str:
    interval = f"95% CI {_number(estimate['low'])} to {_number(estimate['high'])} ms"
    value = f'<td class="n">{_number(estimate["value"])} ms</td>'
    return f'<tr><td>{label}</td>{value}<td class="muted">{interval}</td></tr>'


PLOT_WIDTH, PLOT_LEFT = 560, 90


def _scale(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or abs(high) * 0.05 or 1.0
    return low - pad, high + pad


def _x(value: float, low: float, high: float) -> float:
    return PLOT_LEFT + (value - low) / (high - low) * (PLOT_WIDTH - PLOT_LEFT - 10)


def _rounds_plot(current: Sequence[float], baseline: Sequence[float]) -> str:
    """Each run's per-round medians on one axis: the distributions the latency verdict compares."""
    if not current:
        return ""
    low, high = _scale([*current, *baseline])
    lines = [f'<svg width="{PLOT_WIDTH}" height="{76 if baseline else 48}" role="img" aria-label="round medians">']
    rows = [("this run", current, "#1565c0", 20)] + ([("baseline", baseline, "#888", 46)] if baseline else [])
    for label, values, color, y in rows:
        lines.append(f'<text x="0" y="{y + 4}">{label}</text>')
        lines.append(f'<line x1="{PLOT_LEFT}" x2="{PLOT_WIDTH - 10}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        for v in values:
            lines.append(f'<circle cx="{_x(v, low, high):.1f}" cy="{y}" r="4" fill="{color}" fill-opacity="0.6"/>')
    bottom = 70 if baseline else 42
    lines.append(f'<text x="{PLOT_LEFT}" y="{bottom}">{_number(low)} ms</text>')
    right = f'x="{PLOT_WIDTH - 10}" y="{bottom}" text-anchor="end"'
    lines.append(f"<text {right}>{_number(high)} ms (round medians)</text>")
    lines.append("</svg>")
    return "\n".join(lines)


def _ratio_plot(change: dict[str, Any], tolerance_pct: float) -> str:
    """The p50 ratio's interval against the band the tolerance allows."""
    figures = [v for v in (change.get("low"), change.get("high"), change.get("ratio")) if isinstance(v, (int, float))]
    if len(figures) != 3 or not all(math.isfinite(v) and v > 0 for v in figures):
        return ""
    low, high, ratio = figures
    band = (1 / (1 + tolerance_pct / 100), 1 + tolerance_pct / 100)
    lo, hi = _scale([low, high, *band])
    bx1, bx2 = _x(band[0], lo, hi), _x(band[1], lo, hi)
    cx1, cx2, cx = _x(low, lo, hi), _x(high, lo, hi), _x(ratio, lo, hi)
    note = f"p50 now / baseline: {ratio:.3f} (95% CI {low:.3f} to {high:.3f}); band: tolerance {tolerance_pct:g}%"
    if not change.get("gated", True):
        note += "; reported, not gated (host-paced)"
    return "\n".join(
        [
            f'<svg width="{PLOT_WIDTH}" height="28" role="img" aria-label="latency ratio">',
            '<text x="0" y="18">p50 ratio</text>',
            f'<rect x="{bx1:.1f}" y="6" width="{bx2 - bx1:.1f}" height="16" fill="#e8f5e9"/>',
            f'<line x1="{cx1:.1f}" x2="{cx2:.1f}" y1="14" y2="14" stroke="#1565c0" stroke-width="3"/>',
            f'<circle cx="{cx:.1f}" cy="14" r="4" fill="#1565c0"/>',
            "</svg>",
            f'<p class="muted">{_esc(note)}</p>',
        ]
    )


def _budgets(budgets: Sequence[dict[str, Any]]) -> list[str]:
    if not budgets:
        return []
    out = ["<table><tr><th>budget</th><th>limit</th><th>measured</th><th>status</th></tr>"]
    for b in budgets:
        value = _number(b["value"]) if b.get("value") is not None else _esc(b.get("reason") or "-")
        out.append(
            f'<tr><td>{_esc(b["key"])}</td><td class="n">{_number(b["limit"])}</td>'
            f"<td>{value}</td><td>{_esc(b['status'])}</td></tr>"
        )
    out.append("</table>")
    return out


def _changes(b: dict[str, Any]) -> list[str]:
    out = []
    moved = [c for c in b.get("changes", []) if c.get("outcome") not in ("same", None) and c.get("gated")]
    if moved:
        out.append("<p>what changed against the baseline:</p><ul>")
        out += [f"<li>{_esc(_change_text(c))}</li>" for c in moved]
        out.append("</ul>")
    for label, names in (("kernels that appeared", b.get("kernels_added")), ("disappeared", b.get("kernels_removed"))):
        if names:
            out.append(f"<p>{label}: <code>{_esc(kernel_list(names))}</code></p>")
    kernels = b.get("kernel_changes") or []
    if kernels:
        shown = shown_kernel_names([k["name"] for k in kernels])
        out.append("<table><tr><th>kernel</th><th>baseline us/step</th><th>now us/step</th><th>share of step</th></tr>")
        for k in kernels:
            out.append(
                f"<tr><td><code>{_esc(shown[k['name']])}</code></td><td class='n'>{k['baseline_us']:.1f}</td>"
                f"<td class='n'>{k['current_us']:.1f}</td><td class='n'>{k['step_share_pct']:.0f}%</td></tr>"
            )
        out.append("</table>")
    return out


def _change_text(c: dict[str, Any]) -> str:
    text = f"{c['metric']} {_number(c['baseline'])} -> {_number(c['current'])}: {c['outcome']}"
    return text + (f" ({c['note']})" if c.get("note") else "")


def _bottleneck_html(found: dict[str, Any] | None) -> list[str]:
    if not found:
        return []
    out = [f"<p><b>bottleneck: {_esc(found['kind'])}</b> ({_esc(found['method'])})</p><ul>"]
    out += [f"<li>{_esc(e)}</li>" for e in found.get("evidence", [])]
    out.append(f"</ul><p>try first: {_esc(found['fix'])}</p>")
    return out
