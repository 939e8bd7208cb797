"""Running one test again under Nsight Compute: ``ncu`` starts a child pytest that warms the
step up and runs it once between cudaProfilerStart and Stop; ncu profiles that call's kernels
with its speed-of-light section (each kernel is replayed, so a step takes seconds, not ms)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pytest_gpuperf.analysis.ncu import KernelThroughput, read_speed_of_light
from pytest_gpuperf.analysis.trace import TraceFormatError

TARGET_ENV = "GPUPERF_NCU_TARGET"  # set in the child: the measurement (test id, #n) to profile
NCU_FALLBACK = Path("/usr/local/cuda/bin/ncu")
MAX_KERNELS = 2000  # launches ncu profiles at most: a big step's every kernel would take minutes
_TAIL_CHARS = 1500


@dataclass(frozen=True)
class NcuReport:
    kernels: tuple[KernelThroughput, ...] = ()  # by time, most first
    reason: str | None = None  # why there are none
    log: Path | None = None  # ncu's own output (the CSV table)

    @property
    def launches(self) -> int:
        return sum(k.launches for k in self.kernels)


def find_ncu() -> str | None:
    found = shutil.which("ncu")
    if found is None and NCU_FALLBACK.exists():
        found = str(NCU_FALLBACK)
    return found


def ncu_command(ncu: str, log: Path, pytest_argv: list[str]) -> list[str]:
    return [
        ncu,
        "--profile-from-start",
        "off",  # only the call between cudaProfilerStart and Stop
        "--section",
        "SpeedOfLight",
        "--launch-count",
        str(MAX_KERNELS),
        "--csv",
        "--log-file",
        str(log),
        *pytest_argv,
    ]


def run_under_ncu(
    command: list[str], *, target: str, cwd: Path, log: Path, timeout_s: float, env: dict[str, str] | None = None
) -> NcuReport:
    """Run ``command`` (from :func:`ncu_command`) with the target set; its kernels, or why there are none."""
    child_env = dict(os.environ if env is None else env)
    child_env[TARGET_ENV] = target
    try:
        done = subprocess.run(
            command, cwd=cwd, env=child_env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return NcuReport(reason=f"ncu did not finish in {timeout_s:.0f} s", log=_existing(log))
    except OSError as exc:
        return NcuReport(reason=f"ncu could not start: {exc}")
    text = log.read_text(errors="replace") if log.exists() else ""
    try:
        kernels = read_speed_of_light(text, str(log))
    except TraceFormatError as exc:
        tail = (done.stdout + done.stderr + text)[-_TAIL_CHARS:].strip()
        reason = f"ncu exited with {done.returncode} and profiled nothing ({exc}): {tail}"
        return NcuReport(reason=reason, log=_existing(log))
    if not kernels:
        return NcuReport(reason="ncu profiled no kernel in the step", log=_existing(log))
    return NcuReport(tuple(kernels), log=log)


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None
