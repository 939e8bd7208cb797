"""Time ``gpuperf analyze`` against HolisticTraceAnalysis, whole process per trace, side by side.

    pip install . HolisticTraceAnalysis psutil      # HTA may also be in a venv of its own: --hta-python
    python -m benchmarks.analyze_speed --traces T1.json.gz T2.json.gz ... [--repeat 3]
    python -m benchmarks.analyze_speed --events 1000000 2000000 5000000 [--repeat 3]

Each run is a fresh process, timed from outside (start, imports, reading, analysis, output,
exit), with its own peak resident memory (wait4), started outside the repository so that it
runs the installed package (as a user's ``gpuperf`` does, with its bytecode compiled at install):
- gpuperf: ``python -m pytest_gpuperf.cli analyze --json TRACE``, with the native scanner,
  and again with ``GPUPERF_PURE_PYTHON=1`` (the Python reader) for reference;
- HTA: ``TraceAnalysis(trace_dir)`` plus ``get_temporal_breakdown()`` (load plus temporal
  breakdown), the trace alone in its folder.
Medians of --repeat runs, a trace's three processes run in turn. ``--traces``: real traces, with
totals (HTA's time over gpuperf's);
``--events``: the recorded eager decode trace (tests/data/traces/decode_eager.json.gz) tiled end
to end to the sizes asked (every copy shifted in time, fresh correlation ids and step names),
written as it is made, for time per event and memory against the JSON's size.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "data" / "traces" / "decode_eager.json.gz"

HTA = """
import contextlib, io, logging, os, sys
logging.disable(logging.CRITICAL)
from hta.trace_analysis import TraceAnalysis
with contextlib.redirect_stdout(io.StringIO()):
    analysis = TraceAnalysis(trace_dir=os.path.dirname(sys.argv[1]))
    try:
        analysis.get_temporal_breakdown(visualize=False)
    except AssertionError:  # HTA's own check (idle + compute > span) fails on some real traces
        sys.exit(HTA_BREAKDOWN_FAILED)
""".replace("HTA_BREAKDOWN_FAILED", "3")
HTA_BREAKDOWN_FAILED = 3


@dataclass
class Run:
    seconds: float
    peak_mb: float
    incomplete: bool = False  # HTA's breakdown failed: its time is a lower bound


# Timed processes run here, not in the repository: ``python -m`` there would import the source
# tree (compiling it where no bytecode is cached) instead of the installed package.
NEUTRAL_DIR = tempfile.gettempdir()


def timed(argv: list[str], env: dict[str, str] | None = None) -> Run:
    """One process, timed from outside, with its own peak resident memory."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=NEUTRAL_DIR)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, HTA_BREAKDOWN_FAILED):
        error = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise RuntimeError(f"{argv[:4]} failed ({code}):\n{error[-2000:]}")
    return Run(seconds, usage.ru_maxrss / 1024, code == HTA_BREAKDOWN_FAILED)


def median_run(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> Run:
    return median_of([timed(argv, env) for _ in range(repeat)])


def median_of(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs),
        statistics.median(r.peak_mb for r in runs),
        any(r.incomplete for r in runs),
    )


def gpuperf_argv(path: Path) -> list[str]:
    return [sys.executable, "-m", "pytest_gpuperf.cli", "analyze", "--json", str(path)]


def python_reader_env() -> dict[str, str]:
    return {**os.environ, "GPUPERF_PURE_PYTHON": "1"}


def json_mb(path: Path) -> float:
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rb") as f:  # type: ignore[operator]
        return sum(len(block) for block in iter(lambda: f.read(2**24), b"")) / 2**20


def tiled_events(target_events: int) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """The recorded trace's top-level fields, and its events tiled to ``target_events``."""
    with gzip.open(SOURCE, "rt") as f:
        base = json.load(f)
    events = base.pop("traceEvents")
    timed_events = [e for e in events if isinstance(e.get("ts"), (int, float))]
    start = min(e["ts"] for e in timed_events)
    length = max(e["ts"] + e.get("dur", 0) for e in timed_events) - start + 100.0
    max_corr = max(
        (e.get("args", {}).get("correlation", 0) for e in events if isinstance(e.get("args"), dict)), default=0
    )

    def generate() -> Iterator[dict[str, Any]]:
        made = copy_index = 0
        while made < target_events:
            for event in events:
                if copy_index and event.get("ph") == "M":
                    continue  # metadata once
                e = copy.copy(event)
                if "ts" in e and isinstance(e["ts"], (int, float)):
                    e["ts"] = round(e["ts"] + copy_index * length, 3)
                if isinstance(e.get("args"), dict) and "correlation" in e["args"]:
                    shifted = e["args"]["correlation"] + copy_index * (max_corr + 1)
                    e["args"] = {**e["args"], "correlation": shifted}
                if e.get("ph") in ("s", "f") and "id" in e and isinstance(e["id"], int):
                    e["id"] = e["id"] + copy_index * (max_corr + 1)
                if isinstance(e.get("name"), str) and e["name"].startswith("ProfilerStep#"):
                    e["name"] = f"ProfilerStep#{int(e['name'][13:]) + copy_index * 1000}"
                made += 1
                yield e
            copy_index += 1

    return {**base, "distributedInfo": {"rank": 0}}, generate()


def tiled_trace(target_events: int) -> dict[str, Any]:
    """The tiled trace as one document (tests and small sizes)."""
    top, events = tiled_events(target_events)
    return {**top, "traceEvents": list(events)}


def write_tiled(path: Path, target_events: int) -> int:
    """Write the tiled trace as gzip, event by event; the number of events."""
    top, events = tiled_events(target_events)
    count = 0
    with gzip.open(path, "wt", compresslevel=1, encoding="utf-8") as f:
        f.write(json.dumps(top)[:-1] + ', "traceEvents": [')
        for event in events:
            f.write((", " if count else "") + json.dumps(event))
            count += 1
        f.write("]}")
    return count


def hta_alone(path: Path, folder: Path) -> Path:
    """``path`` alone in a folder, as HTA reads it (every trace of its folder is one rank)."""
    folder.mkdir(parents=True, exist_ok=True)
    alone = folder / "rank-0.json.gz"
    if path.read_bytes()[:2] == b"\x1f\x8b":
        shutil.copyfile(path, alone)
    else:
        alone.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
    return alone


def have_hta(hta_python: str) -> bool:
    done = subprocess.run([hta_python, "-c", "import hta.trace_analysis"], capture_output=True, check=False)
    return done.returncode == 0


def compare_traces(paths: list[Path], repeat: int, hta_python: str | None, tmp: Path) -> None:
    """Each trace's three processes in turn, ``repeat`` times: a slow spell of the machine falls
    on all three alike, so the ratio is of runs side by side."""
    head = f"{'trace':<34} {'JSON MB':>8} | {'gpuperf s':>9} {'RSS MB':>7} | {'Python rdr s':>12} | {'HTA s':>7}"
    print(f"{head} {'RSS MB':>7} | {'HTA/gpuperf':>11}")
    ours_total = theirs_total = 0.0
    for i, path in enumerate(paths):
        argvs = {"ours": gpuperf_argv(path), "python": gpuperf_argv(path)}
        if hta_python:
            argvs["hta"] = [hta_python, "-c", HTA, str(hta_alone(path, tmp / f"hta{i}"))]
        envs = {"python": python_reader_env()}
        runs: dict[str, list[Run]] = {name: [] for name in argvs}
        for _ in range(repeat):
            for name, argv in argvs.items():
                runs[name].append(timed(argv, envs.get(name)))
        ours, python = median_of(runs["ours"]), median_of(runs["python"])
        theirs = median_of(runs["hta"]) if hta_python else None
        mark = "*" if theirs and theirs.incomplete else " "
        hta = f"{theirs.seconds:6.2f}{mark} {theirs.peak_mb:7.0f}" if theirs else f"{'-':>7} {'-':>7}"
        ratio = f"{theirs.seconds / ours.seconds:10.1f}x" if theirs else f"{'-':>11}"
        print(
            f"{path.name[:34]:<34} {json_mb(path):8.1f} | {ours.seconds:9.3f} {ours.peak_mb:7.0f} | "
            f"{python.seconds:12.3f} | {hta} | {ratio}"
        )
        if theirs:
            ours_total, theirs_total = ours_total + ours.seconds, theirs_total + theirs.seconds
    if theirs_total:
        print(f"total: gpuperf {ours_total:.2f} s, HTA {theirs_total:.2f} s: {theirs_total / ours_total:.1f}x")
        print("*: HTA's temporal breakdown failed its own assertion there (after loading): a lower bound")


def scale_events(sizes: list[int], repeat: int, tmp: Path) -> None:
    print(f"{'events':>9} {'JSON MB':>8} | {'gpuperf s':>9} {'us/event':>8} {'RSS MB':>7} {'RSS/JSON':>8}")
    for target in sizes:
        path = tmp / f"tiled-{target}.json.gz"
        events = write_tiled(path, target)
        size = json_mb(path)
        ours = median_run(gpuperf_argv(path), repeat)
        per_event = 1e6 * ours.seconds / events
        print(
            f"{events:9d} {size:8.1f} | {ours.seconds:9.3f} {per_event:8.3f} {ours.peak_mb:7.0f} "
            f"{ours.peak_mb / size:8.2f}"
        )
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=Path, nargs="+", default=[], help="real traces, one process each")
    parser.add_argument("--events", type=int, nargs="+", default=[], help="sizes of the tiled trace")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hta-python", default=sys.executable, help="the Python that has HolisticTraceAnalysis")
    args = parser.parse_args()
    if not args.traces and not args.events:
        parser.error("give --traces, --events or both")
    where = subprocess.run(
        [sys.executable, "-c", "import pytest_gpuperf.analysis.native as n; print(n.__file__, n.enabled())"],
        capture_output=True,
        text=True,
        check=True,
        cwd=NEUTRAL_DIR,
    ).stdout.split()
    print(f"gpuperf from {Path(where[0]).parent.parent} (native scanner: {where[1]})")
    hta_python = args.hta_python if have_hta(args.hta_python) else None
    if hta_python is None and args.traces:
        print("HolisticTraceAnalysis is not importable there: timing gpuperf only (see --hta-python)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.traces:
            compare_traces(args.traces, args.repeat, hta_python, Path(tmp))
        if args.events:
            scale_events(args.events, args.repeat, Path(tmp))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; medians of {args.repeat} fresh processes")


if __name__ == "__main__":
    main()
