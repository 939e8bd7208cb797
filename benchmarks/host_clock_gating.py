"""Host-clock gating on a busy CPU machine: A/A and a 3x slowdown, fresh processes.

    python -m benchmarks.host_clock_gating OUT --runs 10

Writes a small suite of CPU steps (a torch matmul, a Python loop, a conv) into OUT, records its
baselines, then runs it ``--runs`` times against them, every other run with the CPU loaded by
as many busy processes as it has cores, then twice with each step 3x slower (quiet, loaded).
Prints each run's verdicts and the counts: false verdicts in the A/A runs (regressed or
improved) and the slowdowns caught (docs/benchmarks.md, "The host clock on a busy machine").
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

SUITE = textwrap.dedent(
    """
    import os
    import pytest
    import torch

    SLOWER = float(os.environ.get("HC_SLOWER", "1"))
    torch.manual_seed(0)

    @pytest.mark.gpu_budget(p99_ms=1000)
    def test_matmul(gpu_profiler):
        n = int(192 * SLOWER ** (1 / 3))
        a, b = torch.randn(n, n), torch.randn(n, n)
        gpu_profiler(torch.matmul, a, b)

    @pytest.mark.gpu_budget(p99_ms=1000)
    def test_python_loop(gpu_profiler):
        def step():
            total = 0
            for i in range(int(3000 * SLOWER)):
                total += i % 7
            return total
        gpu_profiler(step)

    @pytest.mark.gpu_budget(p99_ms=1000)
    def test_conv(gpu_profiler):
        conv = torch.nn.Conv2d(8, 8, 3, padding=1)
        x = torch.randn(1, 8, int(48 * SLOWER ** 0.5), 48)
        with torch.inference_mode():
            gpu_profiler(conv, x)
    """
)


def busy() -> None:
    end = time.monotonic() + 600
    while time.monotonic() < end:
        pass


def run(out: Path, name: str, *, update: bool = False, slower: float = 1.0, loaded: bool = False) -> dict[str, Any]:
    hogs = [multiprocessing.Process(target=busy, daemon=True) for _ in range(os.cpu_count() or 1)] if loaded else []
    for hog in hogs:
        hog.start()
    report = out / f"{name}.json"
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--gpuperf", "--gpuperf-device", "cpu",
        "--gpuperf-json", str(report), "test_hc.py",
    ]  # fmt: skip
    if update:
        command.append("--gpuperf-update-baselines")
    try:
        subprocess.run(command, cwd=out, env={**os.environ, "HC_SLOWER": str(slower)}, capture_output=True, check=False)
    finally:
        for hog in hogs:
            hog.terminate()
    tests = json.loads(report.read_text())["tests"]
    verdicts = {t["test"].split("::")[-1]: (t["baseline"]["status"], t["baseline"]["summary"]) for t in tests}
    print(f"{name} ({'loaded' if loaded else 'quiet'}, x{slower:g}): {verdicts}", flush=True)
    return {"name": name, "loaded": loaded, "slower": slower, "verdicts": verdicts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "test_hc.py").write_text(SUITE)
    run(args.out, "record", update=True)
    runs = [run(args.out, f"aa-{i}", loaded=i % 2 == 1) for i in range(args.runs)]
    runs += [run(args.out, f"ab-{i}", slower=3.0, loaded=i % 2 == 1) for i in range(2)]
    aa = Counter(v[0] for r in runs if r["slower"] == 1 for v in r["verdicts"].values())
    ab = Counter(v[0] for r in runs if r["slower"] != 1 for v in r["verdicts"].values())
    summary = {"aa_outcomes": dict(aa), "ab_outcomes": dict(ab), "runs": runs}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({"aa_outcomes": dict(aa), "ab_outcomes": dict(ab)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
