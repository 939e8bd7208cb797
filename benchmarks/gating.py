"""Gating quality on the GPU: A/A and A/B runs in fresh processes.

One process records gpuperf baselines (no delay); then, in an interleaved order,
A/A processes (no delay) and A/B processes with GPU delays of a given share of each
workload's median step. Every point runs benchmarks/gating_suite.py in two fresh processes:
``pytest --gpuperf`` (gpuperf's verdicts against the recorded baselines) and plain
``pytest`` (pytest-benchmark's statistics). benchmarks/gating_report.py turns the
results into verdict rates for gpuperf, the fixed 10% rule and pytest-benchmark's
``--benchmark-compare-fail=mean:10%``.

    python -m benchmarks.gating --out out/gating          # on the GPU
    python -m benchmarks.gating --out out/more --resume out/gating/gating.json   # go on, on a fresh machine
    python -m benchmarks.gating_report out/gating/gating.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SUITE = "benchmarks/gating_suite.py"


def one_process(
    delay_pct: float, reference: dict[str, float], baselines: Path, work: Path, update: bool
) -> dict[str, Any]:
    """Run the suite in two fresh processes (gpuperf, then pytest-benchmark); their results."""
    gpuperf_json, bench_json = work / "gpuperf.json", work / "bench.json"
    for path in (gpuperf_json, bench_json):
        path.unlink(missing_ok=True)
    common = [SUITE, "-q", "-p", "no:cacheprovider"]
    gpuperf_args = [*common, "-k", "test_gpuperf", "--gpuperf"]  # default settings, profiled pass included
    gpuperf_args += ["--gpuperf-baselines-dir", str(baselines), "--gpuperf-json", str(gpuperf_json)]
    if update:
        gpuperf_args.append("--gpuperf-update-baselines")
    bench_args = [*common, "-k", "test_benchmark", "--benchmark-json", str(bench_json), "--benchmark-max-time", "0.3"]
    env = dict(os.environ, GATING_DELAY_PCT=str(delay_pct), GATING_REFERENCE_MS=json.dumps(reference))
    started = time.perf_counter()
    # Two fresh processes: gpuperf's run, then pytest-benchmark's (plain pytest, gpuperf off).
    for args, report in ((gpuperf_args, gpuperf_json), (bench_args, bench_json)):
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *args], env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode not in (0, 1) or not report.exists():
            raise RuntimeError(
                f"a gating run (delay {delay_pct:g}%) exited {proc.returncode}"
                f"{'' if report.exists() else f' without writing {report.name}'}:\n"
                f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
            )
    wall = time.perf_counter() - started
    return {"delay_pct": delay_pct, "wall_s": wall, **summarize(gpuperf_json, bench_json)}


def summarize(gpuperf_json: Path, bench_json: Path) -> dict[str, Any]:
    gpuperf: dict[str, Any] = {}
    for test in json.loads(gpuperf_json.read_text())["tests"]:
        workload = test["test"].split("[")[1].rstrip("]")
        b = test["baseline"]
        p50 = next((c for c in b.get("changes", []) if c["metric"] == "p50_ms"), None)
        gpuperf[workload] = {
            "p50_ms": test["p50_ms"]["value"],
            "p99_ms": test["p99_ms"]["value"],
            "round_medians_ms": test["round_medians_ms"],
            "round_clock_mhz": test["round_clock_mhz"],
            "rounds": test["rounds"],
            "status": b["status"],
            "first_attempt": b.get("first_attempt", ""),
            "changes": [
                {k: c[k] for k in ("metric", "ratio", "low", "high", "outcome", "note")} for c in b.get("changes", [])
            ],
            "p50_change": p50,
        }
    bench: dict[str, dict[str, Any]] = {"plain": {}, "synced": {}}
    for b in json.loads(bench_json.read_text())["benchmarks"]:
        kind = "plain" if b["name"].startswith("test_benchmark_plain") else "synced"
        workload = b["param"]
        stats = b["stats"]
        bench[kind][workload] = {k: stats[k] * 1000.0 for k in ("mean", "median", "min", "stddev")}
        bench[kind][workload]["rounds"] = stats["rounds"]
    return {"gpuperf": gpuperf, "pytest_benchmark": bench}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--aa", type=int, default=6, help="A/A points (default 6)")
    parser.add_argument("--ab", type=int, default=3, help="A/B points per delay (default 3)")
    parser.add_argument("--delays", default="1,2,5,10,15", help="delays in percent of the step (1,2,5,10,15)")
    parser.add_argument("--budget-s", type=float, default=500.0, help="start no process after this long (500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--resume",
        type=Path,
        help="a gating.json to go on from: its baseline files and reference, and the points it did not reach",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gating-"))
    baselines = work / "baselines"
    started = time.perf_counter()
    schedule = [0.0] * args.aa + [float(d) for d in args.delays.split(",") for _ in range(args.ab)]
    random.Random(args.seed).shuffle(schedule)  # interleaved: the card's warming affects every delay alike
    if args.resume:
        results: dict[str, Any] = json.loads(args.resume.read_text())
        for name, text in results["baseline_files"].items():
            (baselines / name).parent.mkdir(parents=True, exist_ok=True)
            (baselines / name).write_text(text)
        schedule = list(results.pop("skipped"))
        results["skipped"] = []
        results.setdefault("resumed", []).append(len(results["processes"]))
    else:
        results = {"processes": [], "skipped": []}
        results["baseline"] = one_process(0.0, {}, baselines, work, update=True)
        results["baseline_files"] = {
            str(p.relative_to(baselines)): p.read_text() for p in sorted(baselines.rglob("*.yaml"))
        }
    reference = {w: v["p50_ms"] for w, v in results["baseline"]["gpuperf"].items()}
    for delay in schedule:
        if time.perf_counter() - started > args.budget_s:
            results["skipped"].append(delay)
            continue
        results["processes"].append(one_process(delay, reference, baselines, work, update=False))
        (args.out / "gating.json").write_text(json.dumps(results, indent=1))
        print(f"{time.perf_counter() - started:6.1f} s: delay {delay:g}% done", flush=True)
    (args.out / "gating.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
