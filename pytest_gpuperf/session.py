"""The plugin object of a ``--gpuperf`` run: registered only then, its methods are the hooks
(as pytest-xdist's DSession and pytest-memray's Manager are). It measures the tests, keeps
their results, and at the end reports them and writes the baselines."""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_gpuperf import xdist
from pytest_gpuperf.benchmark import MeasuredBenchmark
from pytest_gpuperf.cuda.compiled import DynamoWatch
from pytest_gpuperf.explaining import child_pytest_argv, wants_memory
from pytest_gpuperf.gpus import gpu_turn
from pytest_gpuperf.judging import testids
from pytest_gpuperf.judging.baseline import BaselineStore, Lookup, Machine, machine_key
from pytest_gpuperf.judging.compare import INCONCLUSIVE, NEW, NOT_COMPARED, SAME, UNREADABLE, Comparison
from pytest_gpuperf.judging.testids import file_stem, split_test_id
from pytest_gpuperf.judging.text import WRITE_FAILED, count
from pytest_gpuperf.judging.verdict import Policy, verdict
from pytest_gpuperf.junit import user_properties
from pytest_gpuperf.measuring.backend import Backend
from pytest_gpuperf.measuring.consensus import ALONE, Consensus
from pytest_gpuperf.measuring.deadline import deadline
from pytest_gpuperf.measuring.explain import Explanation, MemoryExplanation, explain_memory
from pytest_gpuperf.measuring.generation import Generation
from pytest_gpuperf.measuring.ncu import NCU_FALLBACK, TARGET_ENV, NcuReport, find_ncu, ncu_command, run_under_ncu
from pytest_gpuperf.measuring.nvtx import nvtx_range
from pytest_gpuperf.measuring.protocol import Measurement, measure_test
from pytest_gpuperf.report import terminal
from pytest_gpuperf.report.jsonfile import write_json
from pytest_gpuperf.report.outputs import written
from pytest_gpuperf.report.pages import write_html, write_markdown
from pytest_gpuperf.report.rows import Row, row
from pytest_gpuperf.result import Result
from pytest_gpuperf.runinfo import run_info
from pytest_gpuperf.settings import Settings
from pytest_gpuperf.stash import BUDGET_KEY, RESULTS_KEY, TOLERANCE_KEY, GpuperfWarning

BENCHMARK_MIN_ROUND_S = 0.002


@dataclass(frozen=True)
class Placement:
    """Where this process measures: its rank in a torchrun job, its GPU among pytest-xdist workers."""

    rank: int = 0
    world_size: int = 1
    gpu: str | None = None  # the GPU this pytest-xdist worker was given
    gpu_lock_dir: Path | None = None  # set where workers share GPUs: measurements take turns
    machine_key: str | None = None  # from the pytest_gpuperf_machine_key hook; None: from the device name

    @property
    def reporting(self) -> bool:
        """Whether this process reports and writes files: rank 0 of a torchrun job, or the only one."""
        return self.world_size == 1 or self.rank == 0


@dataclass
class Coverage:
    """Which tests the run collected, and whether it ran whole modules: a baseline entry is stale
    only where its module was collected whole."""

    collected: dict[str, set[str]] = field(default_factory=dict)  # module -> test names, before deselection
    narrowed: set[str] = field(default_factory=set)  # modules run only in part (test ids given)
    deselected: int = 0

    def to_wire(self) -> dict[str, Any]:
        collected = {m: sorted(tests) for m, tests in self.collected.items()}
        return {"collected": collected, "narrowed": sorted(self.narrowed), "deselected": self.deselected}

    def merge(self, wire: dict[str, Any]) -> None:
        for module, tests in wire["collected"].items():
            self.collected.setdefault(module, set()).update(tests)
        self.narrowed.update(wire["narrowed"])
        # Every worker collects the whole suite, so each reports the same deselection.
        self.deselected = max(self.deselected, wire["deselected"])


class TraceFiles:
    """Numbered files for the profiled passes, in a temporary folder removed at the end."""

    def __init__(self) -> None:
        self._folder: Path | None = None
        self._made = 0

    def next(self) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="gpuperf-"))
        self._made += 1
        return self._folder / f"{self._made}.pt.trace.json.gz"

    def named(self, name: str) -> Path:
        """A file of this name in the temporary folder."""
        return self.next().with_name(f"{self._made}-{name}")

    def remove(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


class GpuperfSession:
    def __init__(
        self, settings: Settings, backend: Backend, note: str | None, placement: Placement, rootdir: Path
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.note = note  # said once in the report header (e.g. no GPU)
        self.placement = placement
        self.rootdir = rootdir
        self.coverage = Coverage()
        self.results: list[Result] = []
        self.saved_traces: dict[int, str] = {}  # id(measurement) -> where its trace was kept
        self.baseline_lines: list[str] = []  # what the end of the session did to baselines
        self.output_errors: list[str] = []  # files the end of the session could not write, and why
        self.unwritten: set[str] = set()  # the reports among them, as their options name them
        self.policy = Policy(update=settings.gpuperf_update_baselines, strict=settings.gpuperf_strict_baselines)
        self._baselines: BaselineStore | None = None  # opened on the first measurement
        self._consensus: Consensus | None = None
        self._traces = TraceFiles()
        self.started = datetime.now(timezone.utc)
        self.relay = xdist.Relay(self.store, self.coverage.merge)  # pytest-xdist workers' rows, on the controller
        self.ncu_target = os.environ.get(TARGET_ENV)  # set where this is the child ncu runs for --gpuperf-ncu

    # --- measuring -----------------------------------------------------------------------------------

    def consensus(self) -> Consensus:
        """How this process agrees with the other ranks (itself alone outside torchrun)."""
        if self._consensus is None:
            if self.placement.world_size > 1:
                from pytest_gpuperf.cuda.distributed import TorchDistributed

                self._consensus = TorchDistributed()
            else:
                self._consensus = ALONE
        return self._consensus

    def store(self) -> BaselineStore:
        if self._baselines is None:
            env = self.backend.env()
            key = self.placement.machine_key or machine_key(env)
            if self.placement.world_size > 1 and not self.placement.machine_key:
                key = f"{key}-x{self.placement.world_size}"  # a job's step differs with its world size
            folder = self.rootdir / self.settings.gpuperf_baselines_dir
            self._baselines = BaselineStore(folder, key, Machine.of(env), self.rootdir)
        return self._baselines

    def measure(
        self, item: pytest.Item, step: Callable[[], Any], items: float | None, generation: Generation | None = None
    ) -> Measurement:
        """Measure ``step`` for ``item``, compare it with its baseline, stage a new baseline
        entry where the run records them, and judge it. ``generation``: the step is a generate
        call, and this reads its tokens."""
        done: list[Result] = item.stash.setdefault(RESULTS_KEY, [])
        label = measurement_id(item) if not done else f"{measurement_id(item)}#{len(done) + 1}"
        if self.ncu_target == label:
            self._profile_for_ncu(step, label)
        tolerance_pct = item.stash.get(TOLERANCE_KEY, self.settings.gpuperf_tolerance)
        module, test = split_test_id(label)
        found = self.store().lookup(module, test)
        limit = deadline(self.settings.gpuperf_timeout, label)
        with gpu_turn(self.placement.gpu_lock_dir, self.placement.gpu), nvtx_range(label), limit:
            measured = measure_test(
                self.backend,
                step,
                self.settings.protocol(),
                test_id=label,
                budget=item.stash.get(BUDGET_KEY, {}),
                items=items,
                trace_paths=self._traces.next,
                baseline=found.entry,
                tolerance_pct=tolerance_pct,
                recording=self.policy.update,
                consensus=self.consensus(),
                watch_compiles=DynamoWatch,
                generation=generation,
            )
        measured = replace(measured, comparison=self._with_lookup(measured.comparison, found, tolerance_pct))
        if found.unknown and not self.policy.update:
            item.warn(GpuperfWarning(found.unknown))
        result = self._judged(measured, found, module, test)
        if result.verdict.failing:
            result = replace(result, explanation=self._explain(item, step, measured, label))
        if result.measurement.comparison is not None and result.measurement.comparison.status == INCONCLUSIVE:
            self._warn_inconclusive(item, result.measurement.comparison, label)
        if measured.compiled_in_rounds:
            item.warn(
                GpuperfWarning(
                    f"{label}: torch.compile compiled {count(measured.compiled_in_rounds, 'frame')} during the "
                    "timed rounds, so compile time is in its samples: a shape, dtype or Python value that "
                    "changes between calls recompiles (TORCH_LOGS=recompiles names the guard)"
                )
            )
        done.append(result)
        self.results.append(result)
        item.user_properties.extend(user_properties(result))
        return measured

    # --- explaining a failure ----------------------------------------------------------------------------

    def _explain(self, item: pytest.Item, step: Callable[[], Any], m: Measurement, label: str) -> Explanation:
        memory = None
        budget: dict[str, float] = item.stash.get(BUDGET_KEY, {})
        if wants_memory(budget) and self.placement.world_size > 1:
            # Ranks fail apart: one rank's extra call would wait forever on the others' collectives.
            memory = MemoryExplanation(reason="no memory-profiled call under torchrun (ranks fail apart)")
        elif wants_memory(budget):
            with gpu_turn(self.placement.gpu_lock_dir, self.placement.gpu):
                trace, timeline = self._explain_files(m, ".memory.pt.trace.json.gz", ".memory")
                memory = explain_memory(self.backend, step, trace, timeline)
            if not self._keeps_explanations():
                memory = replace(memory, trace=None, timeline=None)  # in the temporary folder: not shown
        ncu = self._run_ncu(item, m, label) if self.settings.gpuperf_ncu and self.ncu_target is None else None
        return Explanation(memory, ncu)

    def _keeps_explanations(self) -> bool:
        return self.settings.gpuperf_save_traces != "none"

    def _explain_files(self, m: Measurement, *suffixes: str) -> list[Path]:
        """Where an explaining pass writes: next to the kept traces, else in the temporary folder."""
        stem = file_stem(m.test_id)
        if self._keeps_explanations():
            folder = Path(self.settings.gpuperf_trace_dir)
            folder.mkdir(parents=True, exist_ok=True)
            return [folder / f"{stem}{suffix}" for suffix in suffixes]
        return [self._traces.named(f"{stem}{suffix}") for suffix in suffixes]

    def _run_ncu(self, item: pytest.Item, m: Measurement, label: str) -> NcuReport:
        if self.placement.world_size > 1:
            return NcuReport(reason="not run under torchrun (one rank cannot be replayed alone)")
        ncu = find_ncu()
        if ncu is None:
            return NcuReport(reason=f"ncu (Nsight Compute) is not on PATH nor at {NCU_FALLBACK}")
        (log,) = self._explain_files(m, ".ncu.csv")
        argv = child_pytest_argv(item.config, item, self.settings.gpuperf_warmup_calls)
        with gpu_turn(self.placement.gpu_lock_dir, self.placement.gpu):
            report = run_under_ncu(
                ncu_command(ncu, log, argv),
                target=label,
                cwd=item.config.invocation_params.dir,
                log=log,
                timeout_s=self.settings.gpuperf_timeout,
            )
        return report if self._keeps_explanations() else replace(report, log=None)

    def _profile_for_ncu(self, step: Callable[[], Any], label: str) -> None:
        """In the child that ncu runs: the one profiled call, then the test ends here."""
        from pytest_gpuperf.cuda.backend import capture_for_ncu

        capture_for_ncu(step, self.settings.gpuperf_warmup_calls)
        pytest.skip(f"gpuperf: {label} ran once under Nsight Compute")

    def _with_lookup(self, comparison: Comparison | None, found: Lookup, tolerance_pct: float) -> Comparison:
        """The comparison, or why there is none, naming the baseline file either way."""
        shown = self.shown(found.path)
        if comparison is not None:
            return replace(comparison, baseline_file=shown)
        status = UNREADABLE if found.error else NOT_COMPARED if found.other_setup else NEW
        return Comparison(status, tolerance_pct, reason=found.reason, baseline_file=shown)

    def _judged(self, m: Measurement, found: Lookup, module: str, test: str) -> Result:
        """The verdict, and the new baseline entry where this run records them."""
        assert m.comparison is not None
        recorded = False
        # An update run records what changed, and an entry the baseline keeps less of than this
        # release measures (a metric added since, or fields of a newer release it cannot read).
        stale = bool(m.comparison.lacking or found.unknown)
        if self.policy.update and found.error is None and (m.comparison.status != SAME or stale):
            refused = self.store().stage(module, test, m.entry)
            if refused:
                self.baseline_lines.append(refused)
            recorded = not refused
        return Result(m, verdict(m.budgets, m.comparison, self.policy), recorded)

    def _warn_inconclusive(self, item: pytest.Item, comparison: Comparison, label: str) -> None:
        if self.policy.update:
            return
        unsure = [c.describe() for c in comparison.changes if c.gated and c.outcome == INCONCLUSIVE]
        item.warn(GpuperfWarning(f"{label}: inconclusive against its baseline: {'; '.join(unsure)}"))

    # --- files and rows ------------------------------------------------------------------------------

    def shown(self, path: Path) -> str:
        """A path as the report shows it: relative to the rootdir where it lies inside."""
        try:
            return path.relative_to(self.rootdir).as_posix()
        except ValueError:
            return str(path)

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

    def rows(self) -> list[Row]:
        """Every measurement of the session as a report row, those of xdist workers included."""
        local = [
            row(
                r.measurement,
                r.verdict,
                recorded=r.recorded,
                trace_saved=self.saved_traces.get(id(r.measurement)),
                failure=self.failure_text(r) if r.verdict.failing else None,
            )
            for r in self.results
        ]
        return local + self.relay.rows

    def failure_text(self, r: Result) -> str:
        m = r.measurement
        kept = m.trace_path is not None and self.settings.gpuperf_save_traces != "none"
        trace_file = self.shown(self.trace_target(m)) if kept else None
        return terminal.failure_text(
            m, r.verdict, rank=self.placement.rank, trace_file=trace_file, explanation=r.explanation, shown=self.shown
        )

    def finish(self, interrupted: bool) -> None:
        """At the end of the session (the controller's, under xdist): list the entries of
        tests that no longer exist, and write the staged baselines, once."""
        if (self._baselines is None and not self.coverage.collected) or not self.placement.reporting:
            return  # under torchrun, rank 0 writes
        store = self.store()
        coverage = self.coverage
        stale = store.stale(coverage.collected, coverage.narrowed)
        update = self.policy.update
        whole = not coverage.narrowed and not coverage.deselected and not interrupted
        self.baseline_lines += store.flush(stale, remove_stale=update and whole, whole=whole)
        if stale and not (update and whole):
            listed = [f"{module}.py::{name}" for module, names in sorted(stale.items()) for name in names]
            self.baseline_lines.append(
                f"{count(len(listed), 'entry', 'entries')} for tests that no longer exist: {', '.join(listed)}; "
                "an update run over whole modules (--gpuperf-update-baselines, without -k, -m or test ids) "
                "removes them"
            )

    # --- hooks -------------------------------------------------------------------------------------------

    def pytest_unconfigure(self) -> None:
        self._traces.remove()

    @pytest.hookimpl(trylast=True)  # called last, shown first: under pytest's own lines, as before any plugin's
    def pytest_report_header(self) -> list[str]:
        s = self.settings
        return terminal.header(
            self.backend.name,
            self.backend.env(),
            s.protocol(),
            save_traces=s.gpuperf_save_traces,
            flush_l2=s.gpuperf_flush_l2,
            note=self.note,
        )

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        module, test = split_test_id(measurement_id(item))
        self.coverage.collected.setdefault(module, set()).add(test)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.coverage.deselected += len(items)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        funcargs: dict[str, Any] = getattr(item, "funcargs", {})
        if "benchmark" in funcargs:
            self._synchronize_benchmark(funcargs["benchmark"])
        function = item if isinstance(item, pytest.Function) and self._measures_whole_body(item) else None
        body: Callable[..., Any] | None = function.obj if function is not None else None
        if function is not None and body is not None:
            function.obj = self._measured_body(function, body)
        try:
            result = yield  # the test's own exception, if any, propagates as itself
        finally:
            if function is not None:
                function.obj = body
        results: list[Result] = item.stash.get(RESULTS_KEY, [])
        failed = [r for r in results if r.verdict.failing]
        if failed:
            pytest.fail("\n\n".join(self.failure_text(r) for r in failed), pytrace=False)
        return result

    def _measures_whole_body(self, item: pytest.Function) -> bool:
        """A budgeted test that does not use gpu_profiler: its whole body is the measured step."""
        if BUDGET_KEY not in item.stash or "gpu_profiler" in item.fixturenames:
            return False
        return not inspect.iscoroutinefunction(item.obj)

    def _measured_body(self, item: pytest.Function, body: Callable[..., Any]) -> Callable[..., None]:
        """The test function as pytest calls it, measured: pytest resolves its fixtures and
        passes them in, so this wraps only the call."""

        def measured(**arguments: Any) -> None:
            if "benchmark" in arguments:
                # pytest-benchmark's fixture may be called once per test: the body runs once, and
                # the step handed to the fixture is what gpuperf measures.
                arguments["benchmark"] = MeasuredBenchmark(
                    arguments["benchmark"], lambda step: self.measure(item, step, None)
                )
                body(**arguments)
            else:
                self.measure(item, lambda: body(**arguments), None)

        measured.__wrapped__ = body  # type: ignore[attr-defined]  # pytest cuts tracebacks at the body
        return measured

    def _synchronize_benchmark(self, fixture: Any) -> None:
        """pytest-benchmark reads a host clock around calls that only queue GPU work;
        under --gpuperf on a GPU its clock first waits for the device. Rounds of at
        least 2 ms spread the synchronization and the first launch over many calls."""
        if self.backend.name == "cuda-events" and hasattr(fixture, "_timer"):
            from pytest_gpuperf.cuda.backend import synchronized_timer

            fixture._timer = synchronized_timer
            fixture._min_time = max(getattr(fixture, "_min_time", 0.0), BENCHMARK_MIN_ROUND_S)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        rep = yield
        if call.when == "call":
            results: list[Result] = item.stash.get(RESULTS_KEY, [])
            for result in results:
                self.keep_trace(result.measurement, failed=rep.failed)
        return rep

    @pytest.hookimpl(trylast=True)  # after other plugins' sections, as an entry-point plugin's comes
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        placement = self.placement
        if not placement.reporting:
            terminalreporter.write_line(
                f"gpuperf: rank {placement.rank} of {placement.world_size}: rank 0 reports every rank"
            )
            return
        terminalreporter.write_sep("=", "gpuperf")
        lines = terminal.table(
            self.rows(), lost=self.relay.lost, baseline_lines=self.baseline_lines, updating=self.policy.update
        )
        for line in lines:
            terminalreporter.write_line(line)
        for kind, path in (
            ("JSON report written to", self.settings.gpuperf_json),
            ("HTML report written to", self.settings.gpuperf_html),
            ("Markdown summary appended to", self.settings.gpuperf_markdown),
        ):
            if path and path not in self.unwritten:
                terminalreporter.write_line(f"gpuperf: {kind} {path}")
        for problem in self.output_errors:
            terminalreporter.write_line(f"gpuperf: error: {problem}", red=True, bold=True)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        worker_output = getattr(session.config, "workeroutput", None)
        if worker_output is not None:  # a pytest-xdist worker: the controller reports and writes
            staged = self._baselines.staged if self._baselines is not None else {}
            worker_output[xdist.KEY] = xdist.worker_payload(self.rows(), staged, self.coverage.to_wire())
            return
        self.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
        if not self.placement.reporting:
            return
        settings = self.settings
        if settings.gpuperf_json or settings.gpuperf_html or settings.gpuperf_markdown:
            run, rows = run_info(self.started, self.rootdir, self.backend.env()), self.rows()
        outputs: list[tuple[str, str | None, Callable[[Path], None]]] = [
            ("JSON report", settings.gpuperf_json, lambda p: write_json(
                p, settings=asdict(settings), note=self.note, rows=rows, run=run)),
            ("HTML report", settings.gpuperf_html, lambda p: write_html(p, rows, run)),
            ("Markdown summary", settings.gpuperf_markdown, lambda p: write_markdown(p, rows, run)),
        ]  # fmt: skip
        for what, path, write in outputs:
            if path and (problem := written(what, Path(path), write)):
                self.output_errors.append(problem)
                self.unwritten.add(path)
        self.output_errors += [line for line in self.baseline_lines if WRITE_FAILED in line]
        if self.output_errors and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # measured, but not all of it kept


def measurement_id(item: pytest.Item) -> str:
    return testids.measurement_id(item.path, item.config.rootpath, item.nodeid, item.name)
