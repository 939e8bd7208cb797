"""GPU busy time and active share: gpuperf against HolisticTraceAnalysis, trace by trace.

    pip install HolisticTraceAnalysis
    python -m benchmarks.analyze_agreement

For every H100 recording under tests/data/traces/ both tools read the same file.
gpuperf: the union of device operations (kernels, copies, memsets) over the span from
the first to the last. HTA: get_temporal_breakdown(), whose busy time is
compute + non-compute time and whose span is its "kernel_time". The busy time is also
summed per nanosecond by the brute force tests/test_real_traces.py checks gpuperf against,
so the table says which tool's figure is the exact one.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pytest_gpuperf import analyze, load
from tests.oracle import brute_force
from tests.traces import DATA


def hta_breakdown(path: Path) -> dict[str, Any]:
    from hta.trace_analysis import TraceAnalysis

    folder = Path(tempfile.mkdtemp(prefix="hta-"))
    try:
        shutil.copy(path, folder / "rank0.json.gz")
        breakdown = TraceAnalysis(trace_dir=str(folder)).get_temporal_breakdown(visualize=False)
        return dict(breakdown.to_dict("records")[0])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def row(name: str) -> dict[str, str]:
    path = DATA / f"{name}.json.gz"
    device = analyze(load(path)).primary
    assert device is not None, f"{path}: no device operations"
    truth = brute_force(name)
    out = {
        "trace": path.name,
        "exact_busy_us": f"{truth.busy_us:.3f}",
        "exact_active_pct": f"{truth.gpu_active_pct:.2f}",
        "gpuperf_busy_us": f"{device.busy_us:.3f}",
        "gpuperf_active_pct": f"{device.gpu_active_pct:.2f}",
    }
    try:
        hta = hta_breakdown(path)
    except Exception as exc:  # reported in the table: HTA could not analyse this trace
        failed = f"failed ({type(exc).__name__})"
        return {**out, "hta_busy_us": failed, "hta_active_pct": failed}
    busy = float(hta["compute_time(us)"]) + float(hta["non_compute_time(us)"])
    return {**out, "hta_busy_us": f"{busy:.0f}", "hta_active_pct": f"{100.0 - float(hta['idle_time_pctg']):.2f}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    names = sorted(p.name.removesuffix(".json.gz") for p in DATA.glob("*.json.gz"))
    print("| trace | busy, exact (us) | gpuperf busy (us) | HTA busy (us) | active, exact % | gpuperf % | HTA % |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        r = row(name)
        keys = ("trace", "exact_busy_us", "gpuperf_busy_us", "hta_busy_us", "exact_active_pct")
        keys += ("gpuperf_active_pct", "hta_active_pct")
        print("| " + " | ".join(r[k] for k in keys) + " |")


if __name__ == "__main__":
    main()
