"""What the plugin costs: pytest start-up with gpuperf off, and wall time per measured test.

    python -m benchmarks.plugin_cost [--repeat 7]

1. Start-up: `pytest --collect-only` of one trivial test in a fresh process, with the
   plugin loaded (as every run of an environment that has it) and with `-p no:gpuperf`;
   the median difference is what loading the plugin adds. Also checks torch stays unimported.
2. Wall time of one measured test (default settings: warmup, rounds, profiled pass),
   through `pytest --gpuperf`, for steps of 1, 5 and 10 ms: torch.cuda._sleep on a GPU,
   time.sleep on the host clock otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TRIVIAL = "def test_nothing():\n    pass\n"

MEASURED = textwrap.dedent(
    """
    import time
    import pytest
    import torch

    ON_GPU = torch.cuda.is_available()

    def _cycles_per_ms():
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(1_000_000)
        start.record(); torch.cuda._sleep(1_000_000); end.record(); end.synchronize()
        return 1_000_000 / start.elapsed_time(end)

    CYCLES_PER_MS = _cycles_per_ms() if ON_GPU else None

    @pytest.mark.parametrize("ms", [0, 1, 5, 10])
    def test_step(gpu_profiler, ms):
        # ms=0 goes first and absorbs torch.profiler's one-time start in the process.
        if ON_GPU:
            cycles = int(CYCLES_PER_MS * ms)
            gpu_profiler(torch.cuda._sleep, cycles)
        else:
            gpu_profiler(time.sleep, ms / 1000)
    """
)


def _pytest(args: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def startup(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_trivial.py").write_text(TRIVIAL)
        on, off = [], []
        for _ in range(repeat):  # interleaved, so drift hits both alike
            on.append(_pytest(["--collect-only", "-q", "-p", "no:cacheprovider"], folder))
            off.append(_pytest(["--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:gpuperf"], folder))
        probe = "import sys, pytest_gpuperf.plugin; print('torch' in sys.modules)"
        torch_loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        # The import alone, timed inside fresh processes: far less noisy than whole runs.
        timed = (
            "import time, pytest; t = time.perf_counter(); import pytest_gpuperf.plugin; print(time.perf_counter() - t)"
        )
        imports = [
            float(subprocess.run([sys.executable, "-c", timed], capture_output=True, text=True, check=True).stdout)
            for _ in range(repeat)
        ]
    added_ms = (statistics.median(on) - statistics.median(off)) * 1000
    print(
        f"importing the plugin (after pytest), median of {repeat} fresh processes: "
        f"{statistics.median(imports) * 1000:.1f} ms; torch imported: {torch_loaded.stdout.strip()}"
    )
    print(
        f"whole `pytest --collect-only` runs, median of {repeat}: {statistics.median(off) * 1000:.0f} ms with "
        f"-p no:gpuperf, {statistics.median(on) * 1000:.0f} ms with the plugin ({added_ms:+.0f} ms)"
    )


def measured_wall_time() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_steps.py").write_text(MEASURED)
        report = folder / "r.json"
        total = _pytest(["--gpuperf", "-q", "-p", "no:cacheprovider", "--gpuperf-json", str(report)], folder)
        tests = json.loads(report.read_text())["tests"]
    print(
        f"measured tests, default settings ({tests[0]['env']['backend']} on {tests[0]['env']['device']}); "
        "the first also pays the profiler's one-time start in the process:"
    )
    for test in tests:
        print(
            f"  {test['test']:28s} p50 {test['p50_ms']['value']:8.3f} ms  measured in {test['wall_s']:.2f} s "
            f"({test['warmup_calls']} warmup calls, {test['rounds']} rounds x {test['calls_per_round']} calls)"
        )
    print(f"  whole pytest run: {total:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    startup(args.repeat)
    measured_wall_time()


if __name__ == "__main__":
    main()
