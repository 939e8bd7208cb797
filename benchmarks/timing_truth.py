"""Timing truth on the GPU: the same steps timed by gpuperf, triton's do_bench,
torch.utils.benchmark.Timer and pytest-benchmark (plain and synchronized), each as a
ratio to a CUDA-event reference taken around it, all in one process.

    python -m benchmarks.timing_truth --out OUT [--repeats 3]      # on the GPU
    python -m benchmarks.timing_report OUT/timing-truth.json --plot-dir docs/img

Runs benchmarks/timing_suite.py (read its docstring for the reference and each tool's
settings) in one fresh pytest process with gpuperf off, then writes OUT/timing-truth.json:
the versions, the GPU, and every record the suite wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

SUITE = "benchmarks/timing_suite.py"
WORKLOADS = ("gemm", "copy", "graph_decode", "eager_decode")  # benchmarks/workloads.py (imports torch)


def versions() -> dict[str, Any]:
    import torch

    found: dict[str, Any] = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda}
    for package in ("triton", "pytest", "pytest-benchmark"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    found["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    try:
        import pynvml

        pynvml.nvmlInit()
        found["driver"] = pynvml.nvmlSystemGetDriverVersion()
    except Exception as exc:  # the driver version is a label: its absence is not an error
        found["driver"] = f"unknown ({type(exc).__name__})"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of every (workload, tool) pair (3)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lines = args.out / "timing-truth.jsonl"
    lines.unlink(missing_ok=True)
    env = dict(os.environ, TIMING_TRUTH_OUT=str(lines.resolve()), TIMING_TRUTH_REPEATS=str(args.repeats))
    started = time.perf_counter()
    common = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run([*common, SUITE, "-k", "not first_use"], env=env, check=False)
    exits = [proc.returncode]
    # pytest-benchmark as a fresh pytest process meets the step: one process per timing.
    for rep in range(args.repeats):
        for workload in WORKLOADS:
            first = subprocess.run(
                [*common, f"{SUITE}::test_first_use[{workload}]"],
                env={**env, "TIMING_TRUTH_REP": str(rep)},
                check=False,
            )
            exits.append(first.returncode)
    records = [json.loads(line) for line in lines.read_text().splitlines()] if lines.exists() else []
    result = {
        "command": "python -m benchmarks.timing_truth " + " ".join(sys.argv[1:]),
        "versions": versions(),
        "pytest_exits": exits,
        "wall_s": time.perf_counter() - started,
        "records": records,
    }
    (args.out / "timing-truth.json").write_text(json.dumps(result, indent=1))
    print(f"{len(records)} records in {result['wall_s']:.0f} s; pytest exits {sorted(set(exits))}")
    sys.exit(0 if not any(exits) else 1)


if __name__ == "__main__":
    main()
