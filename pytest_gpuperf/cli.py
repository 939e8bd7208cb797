"""The ``gpuperf`` command: ``gpuperf analyze TRACE... [--json] [--top N]`` and
``gpuperf compare A.json B.json [--tolerance PCT] [--fail-on-regression]``."""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
from typing import Any, NoReturn

from pytest_gpuperf import __version__
from pytest_gpuperf.analysis.load import load
from pytest_gpuperf.analysis.metrics import analyze
from pytest_gpuperf.analysis.results import finite_json
from pytest_gpuperf.analysis.trace import TraceFormatError
from pytest_gpuperf.report.traces import balance_json, render_ranks, render_trace


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpuperf", description="GPU performance analysis for PyTorch steps.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser(
        "analyze",
        help="metrics and the bottleneck of torch.profiler/Kineto traces or Nsight Systems SQLite exports",
        description=(
            "Analyze traces: torch.profiler/Kineto Chrome traces (.json, .json.gz) or Nsight Systems "
            "SQLite exports. Several files are read as one trace per rank and their spread is reported."
        ),
    )
    analyze.add_argument("traces", nargs="+", metavar="TRACE", help="trace files, one per rank")
    analyze.add_argument("--json", action="store_true", help="print JSON (keys are the metric names)")
    analyze.add_argument("--top", type=int, default=10, metavar="N", help="kernels to list (default 10)")
    analyze.add_argument(
        "--time-unit",
        choices=("us", "ns"),
        default="us",
        help="unit of a Chrome trace's ts/dur (the format says us; default us)",
    )
    compare = commands.add_parser(
        "compare",
        help="two saved runs (--gpuperf-json reports) test by test, gated as against a baseline",
        description=(
            "Compare two --gpuperf-json reports test by test with the statistics and gating of a baseline "
            "comparison: latency on per-round medians with intervals (not gated where the host paces the step), "
            "kernel and launch counts exactly, the step's own memory. Tests measured on different setups "
            "(GPU, driver, CUDA, torch) are not compared."
        ),
    )
    compare.add_argument("before", metavar="A.json", help="the earlier run's report")
    compare.add_argument("after", metavar="B.json", help="the later run's report")
    compare.add_argument(
        "--tolerance", type=float, default=5.0, metavar="PCT", help="percent a metric may get worse (default 5)"
    )
    compare.add_argument("--fail-on-regression", action="store_true", help="exit 1 when a test regressed")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "compare":
        return _compare(args)
    if args.top < 0:
        print("gpuperf: error: --top must be zero or more", file=sys.stderr)
        return 2
    results = []
    for path in args.traces:
        try:
            loaded = load(path, time_unit=args.time_unit)
        except TraceFormatError as exc:
            print(f"gpuperf: error: {exc}", file=sys.stderr)
            return 2
        results.append(analyze(loaded, top=args.top))
    spread = found = None
    if len(results) > 1:  # each rank classified knowing how long it waited for the others
        from pytest_gpuperf.analysis.ranks import rank_spread, with_balance  # one trace needs neither

        spread = rank_spread(results)
        results, found = with_balance(results)
    if args.json:
        payload: Any = (
            results[0].to_dict()
            if spread is None
            else {
                "ranks": [r.to_dict() for r in results],
                "spread": {
                    "ranks": list(spread.ranks),
                    "metrics": {s.metric: {**s._asdict(), "spread": s.spread} for s in spread.metrics},
                    "nccl_imbalance_pct": spread.nccl_imbalance_pct,
                    "straggler_rank": found.straggler_rank if found is not None else None,
                },
                "balance": balance_json(found),
            }
        )
        payload, notes = finite_json(payload)
        if notes:
            payload["notes"] = notes
        json.dump(payload, sys.stdout, indent=2, sort_keys=True, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print("\n\n".join(render_trace(r) for r in results))
        if spread is not None:
            print()
            print(render_ranks(spread, found))
    return 0


def _compare(args: argparse.Namespace) -> int:
    # Imported here: `gpuperf analyze`, one process per trace, does not pay for the measuring stack.
    from pytest_gpuperf.judging.compare import REGRESSED
    from pytest_gpuperf.judging.runs import RunReportError, compare_runs
    from pytest_gpuperf.report.runs import render_runs

    if not (args.tolerance >= 0 and math.isfinite(args.tolerance)):
        print("gpuperf: error: --tolerance must be a finite number, 0 or more", file=sys.stderr)
        return 2
    names = (os.path.basename(args.before), os.path.basename(args.after))
    try:
        reports = [_read_report(path) for path in (args.before, args.after)]
        changes = compare_runs(reports[0], reports[1], args.tolerance, names)
    except RunReportError as exc:
        print(f"gpuperf: error: {exc}", file=sys.stderr)
        return 2
    print(render_runs(changes, names))
    regressed = any(c.comparison is not None and c.comparison.status == REGRESSED for c in changes)
    return 1 if regressed and args.fail_on_regression else 0


def _read_report(path: str) -> Any:
    from pytest_gpuperf.judging.runs import RunReportError

    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except OSError as exc:
        raise RunReportError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunReportError(f"{path}: not valid JSON: {exc}") from None


def run() -> NoReturn:
    """The ``gpuperf`` command: :func:`main`, then out without tearing the interpreter down.
    A million-event trace is millions of objects; the collector's last pass over them and
    freeing them one by one would take a tenth of the command's time, for nothing."""
    gc.disable()  # nothing here makes cycles worth collecting
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
