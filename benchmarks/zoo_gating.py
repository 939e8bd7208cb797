"""Gating on the real-model zoo (examples/real) from fresh processes, as CI runs it.

    python -m benchmarks.zoo_gating record --baselines DIR --out OUT
    python -m benchmarks.zoo_gating aa --baselines DIR --out OUT --runs 8 --label start2
    python -m benchmarks.zoo_gating ab --baselines DIR --out OUT --changes eager_attention,fp32 [--runs N]
    python -m benchmarks.zoo_gating report OUT [OUT...]

``record`` measures the zoo once with --gpuperf-update-baselines; ``aa`` runs the unchanged
zoo against those baselines in N fresh processes (run it again on a later machine start:
the baselines travel); ``ab`` runs it once per real change (GPUPERF_ZOO_CHANGE, see
examples/real/conftest.py), or in N fresh processes each with ``--runs N``. Every process
writes its --gpuperf-json report into OUT.
``report`` counts false verdicts (A/A: any "regressed" or "improved"; in A/B runs, on the
tests the change does not touch) and detections (A/B: "regressed" on the touched tests),
with the cause each verdict named, and the bottleneck class of each test in every run.
``--deadline S`` stops starting processes once S seconds have passed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Which zoo tests each change touches (the rest are unchanged: more A/A comparisons).
TOUCHES = {
    "eager_attention": {"test_hf_decoder_forward", "test_hf_generate"},
    "fp32": {
        "test_hf_decoder_forward", "test_hf_generate", "test_timm_cnn_forward", "test_cuda_graph_of_a_library_model",
    },
    "extra_kernel": {"test_torch_compile_default", "test_torch_compile_reduce_overhead"},
    "bigger_copy": {"test_large_copy"},
    "host_sync": {"test_hf_decoder_forward"},
    "graph_break": {"test_torch_compile_default", "test_torch_compile_reduce_overhead"},
    "cudagraph_skip": {"test_torch_compile_default", "test_torch_compile_reduce_overhead"},
    "wider_mlp": {"test_hf_decoder_forward", "test_hf_generate"},
    "python_work": {"test_hf_decoder_forward", "test_hf_generate"},
    "generate_gpu_work": {"test_hf_generate"},
}  # fmt: skip


def run_zoo(baselines: Path, report: Path, change: str = "", update: bool = False) -> float:
    env = {**os.environ, "GPUPERF_ZOO_CHANGE": change, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "-m", "pytest", "examples/real", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
        "--gpuperf", "--gpuperf-baselines-dir", str(baselines), "--gpuperf-json", str(report),
        "--gpuperf-save-traces", "none",
    ]  # fmt: skip
    if update:
        command.append("--gpuperf-update-baselines")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    report.with_suffix(".log").write_text(done.stdout + done.stderr)
    print(f"{report.name}: exit {done.returncode} in {time.perf_counter() - started:.0f} s", flush=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=("record", "aa", "ab", "report"))
    parser.add_argument("outs", nargs="*", type=Path, help="report: folders of earlier runs")
    parser.add_argument("--baselines", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--runs", type=int, default=None, help="aa: processes (8); ab: processes per change (1)")
    parser.add_argument("--label", default="aa")
    parser.add_argument("--changes", default=",".join(TOUCHES))
    parser.add_argument("--deadline", type=float, default=float("inf"))
    args = parser.parse_args(argv)
    if args.phase == "report":
        print(json.dumps(summarize(args.outs), indent=2))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    started, longest = time.perf_counter(), 0.0
    if args.phase == "record":
        run_zoo(args.baselines.resolve(), args.out / "record.json", update=True)
        return 0
    if args.phase == "aa":
        jobs = [("", f"{args.label}-{i}") for i in range(args.runs or 8)]
    else:
        runs = args.runs or 1
        jobs = [(c, f"ab-{c}" + (f"-{i}" if runs > 1 else "")) for i in range(runs) for c in args.changes.split(",")]
    for change, name in jobs:
        if time.perf_counter() - started + longest > args.deadline:
            print(f"deadline: {name} and later not started", flush=True)
            break
        longest = max(longest, run_zoo(args.baselines.resolve(), args.out / f"{name}.json", change))
    return 0


def summarize(outs: list[Path]) -> dict[str, Any]:
    aa: Counter[str] = Counter()
    untouched: Counter[str] = Counter()  # tests an A/B change does not touch, in its process
    false: list[str] = []
    classes: dict[str, Counter[str]] = defaultdict(Counter)
    detections: dict[str, dict[str, list[str]]] = {}  # change -> test -> each process's verdict
    gates: Counter[str] = Counter()  # gate comparisons in unchanged tests (A/A and untouched), by gate
    false_gates: Counter[str] = Counter()
    moves: dict[str, list[float]] = defaultdict(list)  # metric -> change % of each unchanged comparison
    for out in outs:
        for path in sorted(out.glob("*.json")):
            if path.name == "record.json":
                continue
            # ab-CHANGE or ab-CHANGE-N (the Nth process of that change)
            change = path.stem.removeprefix("ab-").split("-")[0] if path.stem.startswith("ab-") else ""
            for test in json.loads(path.read_text())["tests"]:
                name = test["test"].split("::")[-1]
                status = test["baseline"]["status"]
                if not change:
                    classes[name][test["bottleneck"]["kind"] if test["bottleneck"] else "-"] += 1
                if change and name in TOUCHES.get(change, ()):
                    detections.setdefault(change, {}).setdefault(name, []).append(f"{status}: {cause(test)}")
                    continue
                (untouched if change else aa)[status] += 1
                for gate, verdict in test["baseline"].get("gates", {}).items():
                    gates[gate] += 1
                    false_gates[gate] += verdict in ("regressed", "improved")
                for c in test["baseline"].get("changes", []):
                    if c["metric"] in MOVES_KEPT and c["baseline"]:
                        moves[f"{c['metric']}{'' if c['gated'] else ' (not gated)'}"].append(
                            round((c["current"] / c["baseline"] - 1) * 100, 2)
                        )
                if status in ("regressed", "improved"):
                    false.append(f"{out.name}/{path.stem} {name}: {status}: {cause(test)}")
    return {
        "aa_comparisons": sum(aa.values()),
        "aa_outcomes": dict(aa),
        "untouched_in_ab_runs": dict(untouched),
        "false_verdicts": false,
        "gate_comparisons_unchanged": dict(gates),
        "false_gate_verdicts": dict(false_gates),
        "unchanged_moves_pct": {m: {"n": len(v), "min": min(v), "max": max(v)} for m, v in sorted(moves.items())},
        "ab_detections": detections,
        "classes_in_unchanged_runs": {name: dict(c) for name, c in classes.items()},
    }


MOVES_KEPT = ("gpu_ms_per_step", "host_lines_per_step", "host_calls_per_step", "p50_ms")


def cause(test: dict[str, Any]) -> str:
    baseline = test["baseline"]
    decided = [
        f"{c['metric']} {c['baseline']:.4g} -> {c['current']:.4g} ({c['outcome']})"
        for c in baseline.get("changes", [])
        if c.get("gated") and c.get("outcome") not in ("same", None)
    ]
    decided += [f"over budget: {b['key']} ({b['value']:g})" for b in test.get("budgets", []) if b["status"] == "fail"]
    added = [k[:60] for k in baseline.get("kernels_added", [])][:3]
    removed = [k[:60] for k in baseline.get("kernels_removed", [])][:3]
    parts = (
        decided + ([f"kernels appeared: {added}"] if added else []) + ([f"disappeared: {removed}"] if removed else [])
    )
    return "; ".join(parts) or baseline.get("reason", "")


if __name__ == "__main__":
    sys.exit(main())
