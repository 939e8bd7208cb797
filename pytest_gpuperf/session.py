"""State of one pytest session: settings, the backend, and every measurement."""

from __future__ import annotations

import importlib.util
import re
import shutil
import tempfile
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_gpuperf.settings import Settings

if TYPE_CHECKING:  # the protocol pulls in the analysis core: imported when measuring
    from pytest_gpuperf.protocol import Backend, Measurement

SESSION_KEY = pytest.StashKey["GpuperfSession"]()
BUDGET_KEY = pytest.StashKey[dict[str, float]]()
MEASUREMENTS_KEY = pytest.StashKey[list["Measurement"]]()


@dataclass
class GpuperfSession:
    settings: Settings
    backend: Backend | None = None  # None: gpuperf is off
    note: str | None = None  # said once in the report header (e.g. no GPU)
    measurements: list[Measurement] = field(default_factory=list)
    saved_traces: dict[int, str] = field(default_factory=dict)  # id(measurement) -> path
    _scratch: Path | None = None

    @property
    def active(self) -> bool:
        return self.backend is not None

    def scratch(self) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="gpuperf-"))
        return self._scratch

    def measure(self, item: pytest.Item, step: Any, items: float | None) -> Measurement:
        from pytest_gpuperf.protocol import measure

        assert self.backend is not None
        done = item.stash.setdefault(MEASUREMENTS_KEY, [])
        label = item.nodeid if not done else f"{item.nodeid}#{len(done) + 1}"
        with nvtx_range(label):
            result = measure(
                self.backend,
                step,
                self.settings,
                test_id=label,
                budget=item.stash.get(BUDGET_KEY, {}),
                items=items,
                trace_path=self.scratch() / f"{len(self.measurements)}.pt.trace.json.gz",
            )
        done.append(result)
        self.measurements.append(result)
        item.user_properties.extend(user_properties(result))
        return result

    def trace_target(self, measurement: Measurement) -> Path:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", measurement.test_id).strip("_")
        return Path(self.settings.gpuperf_trace_dir) / f"{name}.pt.trace.json.gz"

    def keep_trace(self, measurement: Measurement, failed: bool) -> None:
        wanted = self.settings.gpuperf_save_traces
        if measurement.trace_path is None or wanted == "none" or (wanted == "failed" and not failed):
            return
        target = self.trace_target(measurement)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(measurement.trace_path, target)
        self.saved_traces[id(measurement)] = str(target)

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def user_properties(m: Measurement) -> list[tuple[str, object]]:
    """The measured metrics, as JUnit XML properties."""
    props: list[tuple[str, object]] = [
        ("gpuperf_backend", m.env.backend),
        ("gpuperf_device", m.env.device),
        ("gpuperf_p50_ms", round(m.p50.value, 6)),
        ("gpuperf_p99_ms", round(m.p99.value, 6)),
        ("gpuperf_verdict", m.verdict),
    ]
    if m.rounds_info.peak_mem_mb is not None:
        props.append(("gpuperf_peak_mem_mb", round(m.rounds_info.peak_mem_mb, 3)))
    device = m.device
    if device is not None:
        props.append(("gpuperf_gpu_active_pct", round(device.gpu_active_pct, 4)))
        if device.dispatch_ratio is not None:
            props.append(("gpuperf_dispatch_ratio", round(device.dispatch_ratio, 4)))
        props.append(("gpuperf_bottleneck", device.classification.kind if device.classification else ""))
    return props


_nvtx_warned = False


def nvtx_range(name: str) -> AbstractContextManager[Any]:
    """An NVTX range (the nvtx package), so `nsys profile pytest --gpuperf` shows it by name."""
    global _nvtx_warned
    try:
        import nvtx
    except ImportError:
        if not _nvtx_warned:
            _nvtx_warned = True
            import warnings

            warnings.warn("pytest-gpuperf: the nvtx package is missing: no NVTX ranges", stacklevel=2)
        return nullcontext()
    range_: AbstractContextManager[Any] = nvtx.annotate(name)
    return range_


def choose_backend(config: pytest.Config, settings: Settings) -> tuple[Backend, str | None]:
    """The backend to measure with, and a note for the header; usage errors say what to do."""
    if importlib.util.find_spec("torch") is None:
        raise pytest.UsageError("--gpuperf needs PyTorch, which is not installed: pip install torch")
    custom = config.hook.pytest_gpuperf_make_backend(config=config, settings=settings)
    if custom is not None:
        return custom, None
    device, require = settings.gpuperf_device, settings.gpuperf_require_gpu
    if device == "cpu":
        if require:
            raise pytest.UsageError("--gpuperf-require-gpu contradicts --gpuperf-device cpu")
        from pytest_gpuperf.hostclock import HostClockBackend

        return HostClockBackend(), "timing with the host clock (--gpuperf-device cpu): GPU metrics are unavailable"
    import torch

    if torch.cuda.is_available():
        from pytest_gpuperf.cuda.backend import CudaBackend

        return CudaBackend(flush_l2=settings.gpuperf_flush_l2), None
    why = f"torch {torch.__version__} sees no CUDA device"
    if device == "cuda" or require:
        flag = "--gpuperf-device cuda" if device == "cuda" else "--gpuperf-require-gpu"
        raise pytest.UsageError(f"{flag}: {why}")
    from pytest_gpuperf.hostclock import HostClockBackend

    return HostClockBackend(), f"{why}: timing with the host clock; GPU metrics are unavailable"
