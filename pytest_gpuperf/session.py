"""State of one pytest session: settings, the backend, baselines, and every measurement."""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_gpuperf.gpus import gpu_turn
from pytest_gpuperf.judging.testids import base_test, file_stem, module_key, split_test_id
from pytest_gpuperf.judging.text import count
from pytest_gpuperf.measuring.deadline import deadline
from pytest_gpuperf.settings import Settings

if TYPE_CHECKING:  # the protocol pulls in the analysis core: imported when measuring
    from pytest_gpuperf.judging.baseline import BaselineStore
    from pytest_gpuperf.measuring.backend import Backend
    from pytest_gpuperf.measuring.consensus import Consensus
    from pytest_gpuperf.measuring.protocol import Measurement

SESSION_KEY = pytest.StashKey["GpuperfSession"]()
BUDGET_KEY = pytest.StashKey[dict[str, float]]()
TOLERANCE_KEY = pytest.StashKey[float]()  # from @pytest.mark.gpu_baseline(tolerance_pct=...), as a fraction
MEASUREMENTS_KEY = pytest.StashKey[list["Measurement"]]()


class GpuperfWarning(pytest.PytestWarning):
    """A measurement that could not be judged against its baseline (too noisy to tell)."""


@dataclass
class GpuperfSession:
    settings: Settings
    backend: Backend | None = None  # None: gpuperf is off
    note: str | None = None  # said once in the report header (e.g. no GPU)
    measurements: list[Measurement] = field(default_factory=list)
    saved_traces: dict[int, str] = field(default_factory=dict)  # id(measurement) -> path
    baselines: BaselineStore | None = None  # opened on the first measurement
    rootdir: Path = field(default_factory=Path.cwd)
    collected: dict[str, set[str]] = field(default_factory=dict)  # module -> test names, before deselection
    narrowed: set[str] = field(default_factory=set)  # modules run only in part (test ids given)
    deselected: int = 0
    remote: list[dict[str, Any]] = field(default_factory=list)  # results sent by pytest-xdist workers
    baseline_lines: list[str] = field(default_factory=list)  # what the end of the session did to baselines
    lost: list[str] = field(default_factory=list)  # pytest-xdist workers that ended without sending results
    measured_on: dict[str, list[str]] = field(default_factory=dict)  # xdist worker id -> tests it measured
    machine_key: str | None = None  # from the pytest_gpuperf_machine_key hook; None: from the device name
    world_size: int = 1  # ranks of the torchrun job this process is one of
    rank: int = 0
    gpu: str | None = None  # the GPU this pytest-xdist worker was given
    gpu_lock_dir: Path | None = None  # set where workers share GPUs: measurements take turns
    _consensus: Consensus | None = None
    _scratch: Path | None = None
    _traces: int = 0

    @property
    def active(self) -> bool:
        return self.backend is not None

    def consensus(self) -> Consensus:
        """How this process agrees with the other ranks (itself alone outside torchrun)."""
        if self._consensus is None:
            from pytest_gpuperf.measuring.consensus import ALONE

            if self.world_size > 1:
                from pytest_gpuperf.cuda.distributed import TorchDistributed

                self._consensus = TorchDistributed()
            else:
                self._consensus = ALONE
        return self._consensus

    @property
    def reporting(self) -> bool:
        """Whether this process reports and writes files: rank 0 of a torchrun job, or the only one."""
        return self.world_size == 1 or self.rank == 0

    def scratch(self) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="gpuperf-"))
        return self._scratch

    def store(self) -> BaselineStore:
        if self.baselines is None:
            from pytest_gpuperf.judging.baseline import BaselineStore, Machine, machine_key

            assert self.backend is not None
            env = self.backend.env()
            key = self.machine_key or machine_key(env)
            if self.world_size > 1 and not self.machine_key:
                key = f"{key}-x{self.world_size}"  # a job's step differs with its world size
            self.baselines = BaselineStore(
                self.rootdir / self.settings.gpuperf_baselines_dir, key, Machine.of(env), self.rootdir
            )
        return self.baselines

    def measure(self, item: pytest.Item, step: Any, items: float | None) -> Measurement:
        from pytest_gpuperf.judging.compare import (
            INCONCLUSIVE,
            NEW,
            NOT_COMPARED,
            REGRESSED,
            SAME,
            UNREADABLE,
            Comparison,
        )

        done = item.stash.setdefault(MEASUREMENTS_KEY, [])
        label = measurement_id(item) if not done else f"{measurement_id(item)}#{len(done) + 1}"
        tolerance = item.stash.get(TOLERANCE_KEY, self.settings.gpuperf_tolerance / 100.0)
        store = self.store()
        module, test = split_test_id(label)
        found = store.lookup(module, test)
        update = self.settings.gpuperf_update_baselines
        consensus = self.consensus()
        limit = deadline(self.settings.gpuperf_timeout, label)
        with gpu_turn(self.gpu_lock_dir, self.gpu), nvtx_range(label), limit:
            result = self._measure(item, step, items, label, found.entry, tolerance, consensus)
            first = result.comparison
            suspected = first is not None and first.status == REGRESSED and not update
            if consensus.any(suspected):  # every rank measures again, or the step's collectives hang
                # A suspected regression is measured again before it fails the test.
                again = self._measure(item, step, items, label, found.entry, tolerance, consensus)
                if suspected:
                    assert first is not None and again.comparison is not None
                    worse = [c.brief() for c in first.changes if c.gated and c.outcome == REGRESSED]
                    told = f"{', '.join(worse)}: regressed"
                    again = replace(again, comparison=replace(again.comparison, first_attempt=told))
                result = again
        result = self._with_ranks(item, result, consensus)
        if result.comparison is None:
            status = UNREADABLE if found.error else NOT_COMPARED if found.other_setup else NEW
            result = replace(result, comparison=Comparison(status, tolerance * 100.0, reason=found.reason))
        assert result.comparison is not None
        comparison = replace(result.comparison, baseline_file=self.shown(found.path))
        result = replace(result, comparison=comparison)
        if update and found.error is None and comparison.status != SAME:
            refused = store.stage(module, test, result.entry)
            if refused:
                self.baseline_lines.append(refused)
        if comparison.status == INCONCLUSIVE and not update:
            unsure = [c.describe() for c in comparison.changes if c.gated and c.outcome == INCONCLUSIVE]
            item.warn(GpuperfWarning(f"{label}: inconclusive against its baseline: {'; '.join(unsure)}"))
        done.append(result)
        self.measurements.append(result)
        item.user_properties.extend(user_properties(result, self.failing(result)))
        return result

    def _with_ranks(self, item: pytest.Item, result: Measurement, consensus: Consensus) -> Measurement:
        """Every rank's figures for this test (under torchrun), and the budgets they decide."""
        from pytest_gpuperf.analysis.ranks import RanksReport
        from pytest_gpuperf.judging.budget import KEYS, judge

        ranks = None
        if consensus.world_size > 1:
            device = result.device
            nccl_per_step = device.nccl_us / device.steps if device is not None and device.steps else None
            payload = {
                "rank": consensus.rank,
                "p50_ms": result.p50.value,
                "p99_ms": result.p99.value,
                "nccl_pct": device.nccl_pct if device is not None else None,
                "nccl_us_per_step": nccl_per_step,
                "nccl_overlap_pct": device.nccl_overlap_pct if device is not None else None,
            }
            ranks = RanksReport.of(consensus.gather(payload))
        budgets = list(result.budgets)
        for key, limit in item.stash.get(BUDGET_KEY, {}).items():
            if KEYS[key].source != "ranks":
                continue
            if ranks is None:
                budgets.append(judge(key, limit, None, "one process: run under torchrun with 2 or more ranks"))
            elif (imbalance := ranks.nccl_imbalance_pct) is None:
                budgets.append(judge(key, limit, None, "no NCCL kernel time in every rank's profiled pass"))
            else:
                budgets.append(judge(key, limit, imbalance))
        return replace(result, ranks=ranks, budgets=tuple(budgets))

    def _measure(
        self,
        item: pytest.Item,
        step: Any,
        items: float | None,
        label: str,
        baseline: Any,
        tolerance: float,
        consensus: Consensus,
    ) -> Measurement:
        from pytest_gpuperf.measuring.protocol import measure

        assert self.backend is not None
        self._traces += 1
        trace_path = self.scratch() / f"{self._traces}.pt.trace.json.gz"
        return measure(
            self.backend,
            step,
            self.settings,
            test_id=label,
            budget=item.stash.get(BUDGET_KEY, {}),
            items=items,
            trace_path=trace_path,
            baseline=baseline,
            tolerance=tolerance,
            consensus=consensus,
        )

    def shown(self, path: Path) -> str:
        """A path as the report shows it: relative to the rootdir where it lies inside."""
        try:
            return path.relative_to(self.rootdir).as_posix()
        except ValueError:
            return str(path)

    def recorded(self, m: Measurement) -> bool:
        """Whether this run staged ``m`` as a new baseline entry."""

        if self.baselines is None:
            return False
        module, test = split_test_id(m.test_id)
        return self.baselines.staged.get(module, {}).get(test) is not None

    def results(self) -> list[dict[str, Any]]:
        """Every measurement of the session as report data, those of xdist workers included."""
        from pytest_gpuperf.report import terminal as report

        return [report.measurement_dict(m, self) for m in self.measurements] + self.remote

    def problems(self, m: Measurement) -> list[str]:
        """Why the baseline gate fails this measurement (budgets are judged apart)."""
        from pytest_gpuperf.judging.compare import NEW, NOT_COMPARED, REGRESSED, UNREADABLE

        c = m.comparison
        if c is None:
            return []
        if c.status == UNREADABLE:
            return [f"baseline unreadable (the file is left as it is): {c.reason}"]
        if c.status == REGRESSED and not self.settings.gpuperf_update_baselines:
            return ["regressed against its baseline"]
        strict = self.settings.gpuperf_strict_baselines and not self.settings.gpuperf_update_baselines
        if strict and c.status in (NEW, NOT_COMPARED):
            return [f"no baseline to compare with (--gpuperf-strict-baselines): {c.reason}"]
        return []

    def failing(self, m: Measurement) -> bool:
        return bool(m.failed or self.problems(m))

    def trace_target(self, measurement: Measurement) -> Path:
        return Path(self.settings.gpuperf_trace_dir) / f"{file_stem(measurement.test_id)}.pt.trace.json.gz"

    def keep_trace(self, measurement: Measurement, failed: bool) -> None:
        wanted = self.settings.gpuperf_save_traces
        if measurement.trace_path is None or wanted == "none" or (wanted == "failed" and not failed):
            return
        target = self.trace_target(measurement)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(measurement.trace_path, target)
        self.saved_traces[id(measurement)] = str(target)

    def finish(self, interrupted: bool) -> None:
        """At the end of the session (the controller's, under xdist): list the entries of
        tests that no longer exist, and write the staged baselines, once."""
        if (self.baselines is None and not self.collected) or not self.reporting:
            return  # under torchrun, rank 0 writes
        store = self.store()
        stale = store.stale(self.collected, self.narrowed)
        update = self.settings.gpuperf_update_baselines
        whole = not self.narrowed and not self.deselected and not interrupted
        self.baseline_lines += store.flush(stale, remove_stale=update and whole, whole=whole)
        if stale and not (update and whole):
            listed = [f"{module}.py::{name}" for module, names in sorted(stale.items()) for name in names]
            self.baseline_lines.append(
                f"{count(len(listed), 'entry', 'entries')} for tests that no longer exist: {', '.join(listed)}; "
                "an update run over whole modules (--gpuperf-update-baselines, without -k, -m or test ids) "
                "removes them"
            )

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def measurement_id(item: pytest.Item) -> str:
    """The id a test's measurements and baselines go by: ``<module key>.py::<name>``, the
    node id for a test inside the rootdir (see ``testids.module_key`` for one outside)."""
    name = item.nodeid.partition("::")[2] or item.name
    return f"{module_key(item.path, item.config.rootpath)}.py::{name}"


def user_properties(m: Measurement, failing: bool) -> list[tuple[str, object]]:
    """The measured metrics, as JUnit XML properties: ``gpuperf_p50_ms`` for a test's first
    measurement, ``gpuperf#2_p50_ms`` for its second, so no two properties share a name."""
    suffix = m.test_id[len(base_test(m.test_id)) :]  # "#2" for a test's second measurement
    prefix = f"gpuperf{suffix}_"
    return [(prefix + name.removeprefix("gpuperf_"), value) for name, value in _properties(m, failing)]


def _properties(m: Measurement, failing: bool) -> list[tuple[str, object]]:
    props: list[tuple[str, object]] = [
        ("gpuperf_backend", m.env.backend),
        ("gpuperf_device", m.env.device),
        ("gpuperf_p50_ms", round(m.p50.value, 6)),
        ("gpuperf_p99_ms", round(m.p99.value, 6)),
        ("gpuperf_verdict", "FAIL" if failing else m.verdict),
    ]
    if m.comparison is not None:
        props.append(("gpuperf_baseline", m.comparison.summary()))
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
    from pytest_gpuperf.cuda.host import cuda_missing, torch_threads
    from pytest_gpuperf.measuring.hostclock import HostClockBackend

    device, require = settings.gpuperf_device, settings.gpuperf_require_gpu
    if device == "cpu":
        if require:
            raise pytest.UsageError("--gpuperf-require-gpu contradicts --gpuperf-device cpu")
        note = "timing with the host clock (--gpuperf-device cpu): GPU metrics are unavailable"
        return HostClockBackend(torch_threads()), note
    why = cuda_missing()
    if why is None:
        from pytest_gpuperf.cuda.backend import CudaBackend

        return CudaBackend(flush_l2=settings.gpuperf_flush_l2), None
    if device == "cuda" or require:
        flag = "--gpuperf-device cuda" if device == "cuda" else "--gpuperf-require-gpu"
        raise pytest.UsageError(f"{flag}: {why}")
    note = (
        f"{why}: timing with the host clock; GPU metrics are unavailable, and latency budgets "
        "(stated for a GPU) are reported, not judged (--gpuperf-device cpu judges them)"
    )
    return HostClockBackend(torch_threads()), note
