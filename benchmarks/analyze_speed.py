"""Time ``gpuperf analyze`` against HolisticTraceAnalysis on the same traces, in one run.

    pip install HolisticTraceAnalysis psutil
    python -m benchmarks.analyze_speed [--events 48000 1000000] [--repeat 3] [--hta-max-events 100000]

The traces are the recorded H100 eager decode trace (tests/data/traces/decode_eager.json.gz)
tiled end to end until they hold the asked number of events: every copy shifted in time,
with fresh correlation ids and profiler-step names, so both tools see a longer real run.

For each size, each tool runs in a fresh process (nothing cached, peak memory its own):
- gpuperf: load + all metrics + bottleneck classification (pytest_gpuperf.load, analyze)
- HTA: TraceAnalysis(trace_dir) (parse) + get_temporal_breakdown()
Imports are timed apart from the work. The median of --repeat runs is reported,
with the ratio HTA / gpuperf and each run's peak resident memory against the trace's size.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "data" / "traces" / "decode_eager.json.gz"

GPUPERF = """
import json, resource, sys, time
t0 = time.perf_counter()
from pytest_gpuperf import analyze, load
t1 = time.perf_counter()
result = analyze(load(sys.argv[1]))
t2 = time.perf_counter()
assert result.primary is not None
peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"import_s": t1 - t0, "work_s": t2 - t1, "peak_rss_mb": peak_rss_mb}))
"""

HTA = """
import contextlib, io, json, logging, os, resource, sys, time
logging.disable(logging.CRITICAL)
t0 = time.perf_counter()
from hta.trace_analysis import TraceAnalysis
t1 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    analysis = TraceAnalysis(trace_dir=os.path.dirname(sys.argv[1]))
    breakdown = analysis.get_temporal_breakdown(visualize=False)
t2 = time.perf_counter()
assert len(breakdown) == 1
peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"import_s": t1 - t0, "work_s": t2 - t1, "peak_rss_mb": peak_rss_mb}))
"""


def tiled_trace(target_events: int) -> dict[str, Any]:
    with gzip.open(SOURCE, "rt") as f:
        base = json.load(f)
    events = base["traceEvents"]
    timed = [e for e in events if isinstance(e.get("ts"), (int, float))]
    start = min(e["ts"] for e in timed)
    length = max(e["ts"] + e.get("dur", 0) for e in timed) - start + 100.0
    max_corr = max(
        (e.get("args", {}).get("correlation", 0) for e in events if isinstance(e.get("args"), dict)), default=0
    )
    out: list[dict[str, Any]] = []
    copy_index = 0
    while len(out) < target_events:
        for event in events:
            if copy_index and event.get("ph") == "M":
                continue  # metadata once
            e = copy.copy(event)
            if "ts" in e and isinstance(e["ts"], (int, float)):
                e["ts"] = round(e["ts"] + copy_index * length, 3)
            if isinstance(e.get("args"), dict) and "correlation" in e["args"]:
                e["args"] = {**e["args"], "correlation": e["args"]["correlation"] + copy_index * (max_corr + 1)}
            if e.get("ph") in ("s", "f") and "id" in e and isinstance(e["id"], int):
                e["id"] = e["id"] + copy_index * (max_corr + 1)
            if isinstance(e.get("name"), str) and e["name"].startswith("ProfilerStep#"):
                e["name"] = f"ProfilerStep#{int(e['name'][13:]) + copy_index * 1000}"
            out.append(e)
        copy_index += 1
    return {**base, "traceEvents": out, "distributedInfo": {"rank": 0}}


def run(script: str, path: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark process failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def median_of(script: str, path: Path, repeat: int) -> dict[str, float]:
    runs = [run(script, path) for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[48_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--hta-max-events", type=int, default=100_000, help="skip HTA above this many events (it takes minutes there)"
    )
    args = parser.parse_args()
    try:
        import hta  # noqa: F401

        have_hta = True
    except ImportError:
        have_hta = False
        print("HolisticTraceAnalysis is not installed: timing gpuperf only (pip install HolisticTraceAnalysis psutil)")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.events:
            folder = Path(tmp) / f"t{target}"
            folder.mkdir()
            data = tiled_trace(target)
            path = folder / "rank-0.json.gz"
            raw = json.dumps(data).encode()
            path.write_bytes(gzip.compress(raw, compresslevel=1))
            ours = median_of(GPUPERF, path, args.repeat)
            theirs = median_of(HTA, path, args.repeat) if have_hta and target <= args.hta_max_events else None
            rows.append((len(data["traceEvents"]), len(raw) / 2**20, ours, theirs))

    head = f"{'events':>9} {'json MB':>8} | {'gpuperf s':>9} {'RSS MB':>7} | {'HTA s':>7} {'RSS MB':>7}"
    print(f"{head} | {'HTA/gpuperf':>11}")
    for events, size_mb, ours, theirs in rows:
        hta_s = f"{theirs['work_s']:7.3f} {theirs['peak_rss_mb']:7.0f}" if theirs else f"{'-':>7} {'-':>7}"
        ratio = f"{theirs['work_s'] / ours['work_s']:10.1f}x" if theirs else f"{'-':>11}"
        print(f"{events:9d} {size_mb:8.1f} | {ours['work_s']:9.3f} {ours['peak_rss_mb']:7.0f} | {hta_s} | {ratio}")
    print(
        f"import time: gpuperf {rows[0][2]['import_s']:.3f} s"
        + (f", HTA {rows[0][3]['import_s']:.3f} s" if rows[0][3] else "")
    )
    print(f"python {sys.version.split()[0]}; times are medians of {args.repeat} fresh processes")


if __name__ == "__main__":
    main()
