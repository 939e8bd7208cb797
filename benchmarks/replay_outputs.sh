#!/bin/bash
# The plugin's outputs on fixed measurements, to show a refactoring changed none of them.
#
#   bash benchmarks/replay_outputs.sh OUT_BEFORE        # on the old checkout's install
#   bash benchmarks/replay_outputs.sh OUT_AFTER         # on the new one
#   diff -r OUT_BEFORE OUT_AFTER
#
# Seven pytest runs of one test module through the replay backend (tests/replay.py: fixed call
# times and a recorded trace, so every number repeats): budgets passing and failing, a second
# measurement in a test, pytest-benchmark, parametrized tests; recording baselines, a
# regression measured again, host-paced steps, strict baselines, pytest-xdist with 2 workers,
# no profiled pass, and no --gpuperf. Kept: the terminal output, --gpuperf-json, JUnit XML and
# the baseline files, with times, temporary folders and install paths replaced by placeholders.
# REPO: the checkout whose tests/replay.py is used (default: this one).
set -u
OUTD=$(realpath -m "$1")
REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
export REPO
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
rm -rf "$OUTD"; mkdir -p "$OUTD" "$WORK/proj"; cd "$WORK/proj"
cat > conftest.py <<PY
import os, sys
from pathlib import Path
sys.path.insert(0, os.environ["REPO"])
from tests.replay import ReplayBackend
def pytest_gpuperf_make_backend(config, settings):
    scale = float(os.environ.get("SCALE", "1"))
    trace = os.environ.get("TRACE", "gemm")
    return ReplayBackend([scale * x for x in (1.0, 1.1, 0.9, 1.05, 0.95)], trace=Path(os.environ["REPO"]) / "tests/data/traces" / (trace + ".json.gz") if trace != "none" else None)
PY
cat > test_a.py <<PY
import pytest

@pytest.mark.gpu_budget(p50_ms=5, p99_ms=10, gpu_active_pct_min=1)
def test_whole_body():
    pass

@pytest.mark.gpu_budget(p99_ms=0.5)
def test_over_budget(gpu_profiler):
    gpu_profiler(lambda: None, items=64)

@pytest.mark.gpu_baseline(tolerance_pct=7)
def test_two_steps(gpu_profiler):
    gpu_profiler(lambda: None)
    gpu_profiler(lambda: None, items=8)

@pytest.mark.gpu_budget(kernels_per_step_max=1, peak_mem_mb=100, nccl_pct_max=5, dispatch_ratio_max=0.1)
def test_trace_budgets(gpu_profiler):
    gpu_profiler(lambda: None)

@pytest.mark.gpu_budget(p50_ms=5)
def test_bench(benchmark):
    benchmark(lambda: None)

@pytest.mark.parametrize("n", [1, 2])
def test_param(gpu_profiler, n):
    gpu_profiler(lambda: n)
PY
F="--gpuperf-warmup-ms 0 --gpuperf-round-ms 0 --gpuperf-rounds 3 --gpuperf-max-rounds 6 -p no:cacheprovider"
run() { name=$1; shift; "$@" > $OUTD/$name.out 2>&1; echo "rc=$?" >> $OUTD/$name.out; }
run r1 pytest --gpuperf $F --gpuperf-update-baselines --gpuperf-json $OUTD/r1.json --junitxml $OUTD/r1.xml
cp -r baselines $OUTD/baselines1
SCALE=1.5 run r2 pytest --gpuperf $F --gpuperf-json $OUTD/r2.json --junitxml $OUTD/r2.xml --gpuperf-save-traces all
TRACE=decode_eager SCALE=1.5 run r2b pytest --gpuperf $F --gpuperf-json $OUTD/r2b.json
SCALE=0.5 TRACE=none run r3 pytest --gpuperf $F --gpuperf-json $OUTD/r3.json --gpuperf-strict-baselines -k "not bench"
SCALE=1.0 run r4 pytest --gpuperf $F -n 2 --gpuperf-json $OUTD/r4.json --gpuperf-update-baselines
cp -r baselines $OUTD/baselines4
SCALE=1.0 run r5 pytest --gpuperf $F --gpuperf-profile-steps 0 --gpuperf-json $OUTD/r5.json -k two
run r6 pytest $F -q
cd "$OUTD"
python3 - "$OUTD" "$WORK" "$REPO" "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" <<'PY'
"""Placeholders for what differs between runs and installs, not between outputs."""
import json, re, sys
from pathlib import Path

out, work, repo, site = sys.argv[1:5]
SUBS = [
    (re.escape(out), "OUT"), (re.escape(work), "WORK"), (re.escape(site) + "/", "SITE/"), (re.escape(repo) + "/", "SITE/"),
    (r"/tmp/[A-Za-z0-9_./-]*gpuperf-[A-Za-z0-9_]+", "TMPDIR"), (r"TMPDIR/[0-9]+\.pt", "TMPDIR/N.pt"),
    (r"\d+\.\d+s(?=[ )])", "Xs"), (r"in [0-9.]+s", "in Xs"), (r"\S*pytest_gpuperf/[a-z_/]+\.py:[0-9]+", "PLUGINLOC"),
    (r"[^ ]*/bin/python3?\b", "PY"), (r'(time|timestamp|hostname)="[^"]+"', r'\1="X"'),
    (r"^[.FEsx]+ +\[100%\]", "PROGRESS"),
]
DROP = re.compile(r"benchmark: 1 tests|Name \(time in|^test_bench  |^-{60,}$|generated xml file")  # pytest-benchmark's own timings
for path in sorted(Path(out).rglob("*")):
    if not path.is_file():
        continue
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
        for test in data.get("tests", []):
            test["wall_s"] = 0
            if test.get("host_work"):
                test["host_work"]["count_s"] = 0  # the counted calls' own time
        for key in ("started_at", "git_commit"):  # the run's own time and checkout
            if key in data.get("run", {}):
                data["run"][key] = "X"
        data.get("tests", []).sort(key=lambda t: t["test"])  # xdist workers finish in any order
        text = json.dumps(data, indent=2, sort_keys=True)
    lines = []
    for line in text.splitlines():
        for pattern, replacement in SUBS:
            line = re.sub(pattern, replacement, line)
        if not DROP.search(line):
            lines.append(line)
    if path.name == "r4.out":
        lines.sort()  # xdist: lines in any order
    path.write_text("\n".join(lines) + "\n")
PY
