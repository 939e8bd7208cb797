"""Verdict rates from benchmarks/gating.py's results, per workload and injected delay.

Three gates judge the same processes against the same baseline process:

- gpuperf: the verdict the plugin gave in that process (per-round medians, the
  workload's stated tolerance, a suspected regression measured again);
- fixed 10%: gpuperf's p50 more than 10% above the baseline's (one run each);
- pytest-benchmark ``--benchmark-compare-fail=mean:10%``: its mean more than 10% above
  the baseline process's mean, as users run it (plain) and with a synchronize inside
  the timed function (synced).

Delay 0 rows are A/A runs: every alarm there is false. Other rows count detections.

    python -m benchmarks.gating_report benchmarks/results/gating-h100.json --plot docs/img/gating.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.plots import png

FIXED = 1.10


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    base = results["baseline"]
    out = []
    workloads = list(base["gpuperf"])
    delays = sorted({p["delay_pct"] for p in results["processes"]})
    for workload in workloads:
        base_p50 = base["gpuperf"][workload]["p50_ms"]
        for delay in delays:
            runs = [p for p in results["processes"] if p["delay_pct"] == delay]
            if not runs:
                continue
            g = [p["gpuperf"][workload] for p in runs]
            shift = statistics.median(x["p50_ms"] / base_p50 for x in g)
            row = {
                "workload": workload,
                "delay_pct": delay,
                "n": len(runs),
                "shift": shift,
                # The p50 verdict is the latency gate the other gates compare with; the test's status
                # also counts p99 notes, trace metrics and exact kernel counts (a delay adds a kernel).
                "gpuperf_p50_regressed": sum(_p50(x) == "regressed" for x in g),
                "gpuperf_p50_inconclusive": sum(_p50(x) == "inconclusive" for x in g),
                "gpuperf_failed": sum(x["status"] == "regressed" for x in g),
                "fixed10": sum(x["p50_ms"] > FIXED * base_p50 for x in g),
            }
            for kind in ("plain", "synced"):
                # A run whose pytest-benchmark test failed has no statistics: counted as absent.
                base_stats = base["pytest_benchmark"][kind].get(workload)
                means = [
                    p["pytest_benchmark"][kind][workload]["mean"]
                    for p in runs
                    if workload in p["pytest_benchmark"][kind]
                ]
                row[f"pb_{kind}"] = sum(m > FIXED * base_stats["mean"] for m in means) if base_stats else None
            out.append(row)
    return out


def _p50(gpuperf: dict[str, Any]) -> str | None:
    change = gpuperf.get("p50_change")
    return None if change is None else str(change["outcome"])


def _count(value: int | None, n: int) -> str:
    return "no data" if value is None else f"{value}/{n}"


def markdown(table: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | injected delay | runs | measured p50 shift | gpuperf p50 regressed | gpuperf p50 inconclusive "
        "| gpuperf test failed | fixed 10% | pytest-benchmark plain | pytest-benchmark synced |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        delay = "A/A" if r["delay_pct"] == 0 else f"{r['delay_pct']:g}%"
        n = r["n"]
        lines.append(
            f"| {r['workload']} | {delay} | {n} | {(r['shift'] - 1) * 100:+.1f}% | {r['gpuperf_p50_regressed']}/{n} "
            f"| {r['gpuperf_p50_inconclusive']}/{n} | {r['gpuperf_failed']}/{n} | {r['fixed10']}/{n} "
            f"| {_count(r['pb_plain'], n)} "
            f"| {_count(r['pb_synced'], n)} |"
        )
    return "\n".join(lines)


def plot(table: list[dict[str, Any]], path: Path) -> None:
    workloads = list(dict.fromkeys(r["workload"] for r in table))
    with png(path, ncols=len(workloads), figsize=(4 * len(workloads), 3.4), sharey=True) as (fig, axes):
        for ax, workload in zip(axes, workloads, strict=True):
            mine = [r for r in table if r["workload"] == workload]
            labels = ["A/A" if r["delay_pct"] == 0 else f"{r['delay_pct']:g}%" for r in mine]
            x = range(len(mine))
            width = 0.2
            for offset, (key, name) in enumerate(
                [
                    ("gpuperf_p50_regressed", "gpuperf (p50 verdict)"),
                    ("fixed10", "fixed 10%"),
                    ("pb_plain", "pytest-benchmark"),
                    ("pb_synced", "pytest-benchmark synced"),
                ]
            ):
                heights = [(r[key] or 0) / r["n"] for r in mine]
                ax.bar([i + (offset - 1.5) * width for i in x], heights, width, label=name)
            ax.set_xticks(list(x), labels)
            ax.set_title(workload)
            ax.set_xlabel("injected GPU delay")
        axes[0].set_ylabel("share of runs flagged")
        axes[0].legend(fontsize=7)
        fig.suptitle("Regression alarms per gate (A/A: every alarm is false)", fontsize=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    table = rows(json.loads(args.results.read_text()))
    print(markdown(table))
    if args.plot:
        plot(table, args.plot)


if __name__ == "__main__":
    main()
