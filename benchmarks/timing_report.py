"""Tables and plots from benchmarks/timing_truth.py's results.

    python -m benchmarks.timing_report benchmarks/results/timing-truth-h100.json --plot-dir docs/img

1. Timing truth: each tool's p50 over the CUDA-event reference taken around it (the mean
   of the references before and after; the first-use runs have one, after), per
   workload: the median ratio over the repetitions and its range.
2. From cold: how long each freshly built step takes to settle, and how wide the 95%
   interval of the median of n per-round medians is (what --gpuperf-rounds buys).
3. The profiled pass: wall time of one default measurement with and without it.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.plots import png
from pytest_gpuperf.judging.stats import quantile_interval

TOOLS = {
    "gpuperf": "gpuperf",
    "do_bench": "triton do_bench",
    "timer": "torch Timer",
    "benchmark_plain": "pytest-benchmark (warm process)",
    "benchmark_first_use": "pytest-benchmark (fresh process)",
    "benchmark_synced": "pytest-benchmark + synchronize",
}
SETTLED = 0.05  # the warmup's steadiness rule: successive chunks within 5%
ROUND_COUNTS = (5, 10, 20, 40)


def ratios(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in records:
        if r["kind"] != "timing":
            continue
        refs = [x for x in (r["before_ms"], r["after_ms"]) if x is not None]
        out[(r["workload"], r["tool"])].append(r["ms"] / statistics.fmean(refs))
    return out


def references(records: list[dict[str, Any]]) -> dict[str, float]:
    by: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r["kind"] == "timing" and r["before_ms"] is not None:
            by[r["workload"]] += [r["before_ms"], r["after_ms"]]
    return {w: statistics.median(v) for w, v in by.items()}


def truth_table(records: list[dict[str, Any]]) -> str:
    found, refs = ratios(records), references(records)
    workloads = list(refs)
    lines = [
        "| tool | " + " | ".join(f"{w} ({refs[w]:.3f} ms)" for w in workloads) + " |",
        "|---|" + "---|" * len(workloads),
    ]
    for tool, label in TOOLS.items():
        cells = []
        for w in workloads:
            values = found.get((w, tool), [])
            if not values:
                cells.append("-")
                continue
            mid = statistics.median(values)
            cells.append(f"{mid:.3f} ({min(values):.3f}-{max(values):.3f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def settle_time(chunks: list[list[float]], steady: float) -> str:
    """When the chunk medians entered, and stayed within, SETTLED of the steady value."""
    if abs(chunks[-1][2] - steady) > SETTLED * steady:
        return f"not within {chunks[-1][0]:.0f} s"
    settled_at = chunks[-1][0]
    for t, _, median in reversed(chunks):
        if abs(median - steady) > SETTLED * steady:
            break
        settled_at = t
    return f"{settled_at * 1000:.0f} ms"


def cold_table(records: list[dict[str, Any]]) -> str:
    head = "| workload | first call | settled within 5% after | round medians: spread (max/min) | "
    head += " | ".join(f"95% CI of p50, {n} rounds" for n in ROUND_COUNTS) + " |"
    lines = [head, "|---|---|---|---|" + "---|" * len(ROUND_COUNTS)]
    for r in records:
        if r["kind"] != "from_cold":
            continue
        rounds = r["round_medians"]
        steady = statistics.median(rounds)
        widths = []
        for n in ROUND_COUNTS:
            if n > len(rounds):
                widths.append("-")
                continue
            ci = quantile_interval(rounds[:n], 0.5)
            widths.append(f"{(ci.low / ci.value - 1) * 100:+.2f}% / {(ci.high / ci.value - 1) * 100:+.2f}%")
        first = r["chunks"][0][2]
        lines.append(
            f"| {r['workload']} | {first:.3f} ms | {settle_time(r['chunks'], steady)} "
            f"| {max(rounds) / min(rounds):.4f} | " + " | ".join(widths) + " |"
        )
    return "\n".join(lines)


def cost_table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | with the profiled pass (default) | without (--gpuperf-profile-steps 0) | difference |",
        "|---|---|---|---|",
    ]
    for r in records:
        if r["kind"] != "profiled_pass_cost":
            continue
        on, off = statistics.median(r["profiled"]), statistics.median(r["unprofiled"])
        lines.append(f"| {r['workload']} | {on:.2f} s | {off:.2f} s | {on - off:+.2f} s |")
    return "\n".join(lines)


def plot_truth(records: list[dict[str, Any]], path: Path) -> None:
    found, refs = ratios(records), references(records)
    workloads = list(refs)
    width = 0.8 / len(TOOLS)
    with png(path, figsize=(9, 3.8)) as (_, ax):
        for index, (tool, label) in enumerate(TOOLS.items()):
            xs, mids, lows, highs = [], [], [], []
            for i, w in enumerate(workloads):
                values = found.get((w, tool))
                if not values:
                    continue
                mid = statistics.median(values)
                xs.append(i + (index - (len(TOOLS) - 1) / 2) * width)
                mids.append(mid)
                lows.append(mid - min(values))
                highs.append(max(values) - mid)
            ax.bar(xs, mids, width, yerr=[lows, highs], label=label, capsize=2)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(workloads)), [f"{w}\n{refs[w]:.3f} ms" for w in workloads])
        ax.set_ylabel("p50 / CUDA-event reference")
        ax.set_title("Timing truth: each tool's p50 over the CUDA-event reference (1 = right)", fontsize=10)
        ax.legend(fontsize=7, ncol=2)


def plot_cold(records: list[dict[str, Any]], path: Path) -> None:
    with png(path, figsize=(7, 3.4)) as (_, ax):
        for r in records:
            if r["kind"] != "from_cold":
                continue
            steady = statistics.median(r["round_medians"])
            times = [c[0] * 1000 for c in r["chunks"]]
            ax.plot(times, [c[2] / steady for c in r["chunks"]], label=r["workload"], linewidth=1)
        ax.axhspan(1 - SETTLED, 1 + SETTLED, color="grey", alpha=0.2, label="within 5% of steady")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_ylim(0.6, 1.6)
        ax.set_xlabel("ms since the step's first call")
        ax.set_ylabel("chunk median / steady p50")
        ax.set_title("From cold: freshly built steps settling", fontsize=10)
        ax.legend(fontsize=7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--plot-dir", type=Path, help="write timing-truth.png and warmup.png here")
    args = parser.parse_args()
    data = json.loads(args.results.read_text())
    records = data["records"]
    print(f"versions: {data['versions']}\n")
    print(truth_table(records), end="\n\n")
    print(cold_table(records), end="\n\n")
    print(cost_table(records))
    if args.plot_dir:
        plot_truth(records, args.plot_dir / "timing-truth.png")
        plot_cold(records, args.plot_dir / "warmup.png")


if __name__ == "__main__":
    main()
