"""The pytest plugin entry point (``pytest11: gpuperf``): hook implementations only.

Loaded in every pytest run of an environment that has the package, so it
imports nothing heavy; torch is imported only once ``--gpuperf`` asks to measure.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_gpuperf import gpus, hooks
from pytest_gpuperf.fixtures import cuda_graph, gpu_profiler, kv_pool
from pytest_gpuperf.judging.budget import BudgetError, budget_number, parse_budget
from pytest_gpuperf.judging.testids import checked_machine_key, module_key, split_test_id
from pytest_gpuperf.judging.text import count
from pytest_gpuperf.measuring.consensus import launched_rank
from pytest_gpuperf.session import (
    BUDGET_KEY,
    MEASUREMENTS_KEY,
    SESSION_KEY,
    TOLERANCE_KEY,
    GpuperfSession,
    GpuperfWarning,
    choose_backend,
    measurement_id,
)
from pytest_gpuperf.settings import OPTIONS, add_options, resolve

__all__ = ["cuda_graph", "gpu_profiler", "kv_pool"]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "gpu_budget(p50_ms=, p99_ms=, gpu_active_pct_min=, dispatch_ratio_max=, peak_mem_mb=, nccl_pct_max=, "
        "kernels_per_step_max=, items_per_s_min=, rank_imbalance_pct_max=): the GPU performance this test must "
        "meet under --gpuperf",
    )
    config.addinivalue_line(
        "markers",
        "gpu_baseline(tolerance_pct=): how much worse than its baseline this test may get before it regresses "
        "(default --gpuperf-tolerance, 5)",
    )
    settings = resolve(config)
    session = GpuperfSession(settings, rootdir=config.rootpath)
    if settings.gpuperf:
        _assign_gpu(config, session)  # before the backend starts CUDA in this process
        session.backend, session.note = choose_backend(config, settings)
        key = config.hook.pytest_gpuperf_machine_key(config=config, env=session.backend.env())
        try:
            session.machine_key = None if key is None else checked_machine_key(key)
        except ValueError as exc:
            raise pytest.UsageError(f"pytest_gpuperf_machine_key: {exc}") from None
        session.narrowed = _narrowed_modules(config)
        session.rank, session.world_size = launched_rank()
    else:
        _warn_unused_options(config)
    config.stash[SESSION_KEY] = session


def _warn_unused_options(config: pytest.Config) -> None:
    """gpuperf's other flags do nothing without --gpuperf: say so rather than ignore them."""
    given = [o.flag for o in OPTIONS if o.name != "gpuperf" and config.getoption(o.name) is not None]
    if given:
        config.issue_config_time_warning(
            GpuperfWarning(f"{', '.join(given)} without --gpuperf: nothing is measured, so this does nothing"),
            stacklevel=2,
        )


def _assign_gpu(config: pytest.Config, session: GpuperfSession) -> None:
    """On a pytest-xdist worker: its own GPU, and a lock where workers outnumber GPUs."""
    worker = gpus.worker_index(os.environ)
    workerinput = getattr(config, "workerinput", None)
    if worker is None or workerinput is None:
        return
    found = gpus.visible_gpus(session.settings.gpuperf_gpus, os.environ)
    if not found:
        return
    session.gpu = gpus.assign(found, worker)
    os.environ["CUDA_VISIBLE_DEVICES"] = session.gpu
    if len(found) < int(workerinput.get("workercount", len(found))):
        session.gpu_lock_dir = gpus.lock_dir()


def _narrowed_modules(config: pytest.Config) -> set[str]:
    """Baseline keys of the modules that arguments name tests inside of (path::test)."""
    base = config.invocation_params.dir
    return {module_key(base / arg.split("::")[0], config.rootpath) for arg in config.args if "::" in arg}


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.active:
        return []
    from pytest_gpuperf.report import terminal as report

    return report.header(session)


def pytest_itemcollected(item: pytest.Item) -> None:
    session = item.config.stash.get(SESSION_KEY, None)
    if session is not None and session.active:
        module, test = split_test_id(measurement_id(item))
        session.collected.setdefault(module, set()).add(test)


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        session = items[0].config.stash.get(SESSION_KEY, None)
        if session is not None:
            session.deselected += len(items)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("gpu_budget")
        if marker is not None:
            try:
                item.stash[BUDGET_KEY] = parse_budget(marker.args, marker.kwargs)
            except BudgetError as exc:
                raise pytest.UsageError(f"{item.nodeid}: gpu_budget {exc}") from None
        marker = item.get_closest_marker("gpu_baseline")
        if marker is not None:
            item.stash[TOLERANCE_KEY] = _tolerance(item.nodeid, marker)


def _tolerance(nodeid: str, marker: pytest.Mark) -> float:
    if marker.args or set(marker.kwargs) != {"tolerance_pct"}:
        raise pytest.UsageError(f"{nodeid}: gpu_baseline takes one keyword argument, tolerance_pct=")
    try:
        return budget_number("tolerance_pct", marker.kwargs["tolerance_pct"]) / 100.0
    except BudgetError as exc:
        raise pytest.UsageError(f"{nodeid}: gpu_baseline {exc}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A budgeted test that does not use gpu_profiler: its whole body is the measured step."""
    session = pyfuncitem.config.stash[SESSION_KEY]
    if not session.active or BUDGET_KEY not in pyfuncitem.stash or "gpu_profiler" in pyfuncitem.fixturenames:
        return None
    function = pyfuncitem.obj
    if inspect.iscoroutinefunction(function):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    if "benchmark" in arguments:
        # pytest-benchmark's fixture may be called once per test: the body runs once, and the
        # step handed to the fixture is what gpuperf measures.
        arguments["benchmark"] = MeasuredBenchmark(
            arguments["benchmark"], lambda step: session.measure(pyfuncitem, step, None)
        )
        function(**arguments)
    else:
        session.measure(pyfuncitem, lambda: function(**arguments), None)
    return True


class MeasuredBenchmark:
    """pytest-benchmark's ``benchmark`` fixture in a budgeted test under --gpuperf: the step
    given to it is measured by gpuperf first, then handed on to pytest-benchmark."""

    def __init__(self, fixture: Any, measure: Callable[[Callable[[], Any]], Any]) -> None:
        self._fixture = fixture
        self._measure = measure

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._measure(lambda: fn(*args, **kwargs))
        return self._fixture(fn, *args, **kwargs)

    def pedantic(
        self, target: Callable[..., Any], args: Any = (), kwargs: Any = None, setup: Any = None, **options: Any
    ) -> Any:
        if setup is None:  # with a setup, each call's arguments come from it: pytest-benchmark alone times it
            self._measure(lambda: target(*args, **(kwargs or {})))
        return self._fixture.pedantic(target, args=args, kwargs=kwargs, setup=setup, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fixture, name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    session = item.config.stash[SESSION_KEY]
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    if session.active and "benchmark" in funcargs:
        _synchronize_benchmark(funcargs["benchmark"], session)
    result = yield  # the test's own exception, if any, propagates as itself
    failed = [m for m in item.stash.get(MEASUREMENTS_KEY, []) if session.failing(m)]
    if failed:
        from pytest_gpuperf.report import terminal as report

        pytest.fail("\n\n".join(report.failure_text(m, session) for m in failed), pytrace=False)
    return result


BENCHMARK_MIN_ROUND_S = 0.002


def _synchronize_benchmark(fixture: Any, session: GpuperfSession) -> None:
    """pytest-benchmark reads a host clock around calls that only queue GPU work;
    under --gpuperf on a GPU its clock first waits for the device. Rounds of at
    least 2 ms spread the synchronization and the first launch over many calls."""
    if session.backend is not None and session.backend.name == "cuda-events" and hasattr(fixture, "_timer"):
        from pytest_gpuperf.cuda.backend import synchronized_timer

        fixture._timer = synchronized_timer
        fixture._min_time = max(getattr(fixture, "_min_time", 0.0), BENCHMARK_MIN_ROUND_S)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    rep = yield
    if call.when == "call":
        session = item.config.stash[SESSION_KEY]
        for measurement in item.stash.get(MEASUREMENTS_KEY, []):
            session.keep_trace(measurement, failed=rep.failed)
    return rep


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.active:
        return
    from pytest_gpuperf.report import terminal as report

    if not session.reporting:
        terminalreporter.write_line(f"gpuperf: rank {session.rank} of {session.world_size}: rank 0 reports every rank")
        return
    terminalreporter.write_sep("=", "gpuperf")
    for line in report.table(session):
        terminalreporter.write_line(line)
    if session.settings.gpuperf_json:
        terminalreporter.write_line(f"gpuperf: JSON report written to {session.settings.gpuperf_json}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(SESSION_KEY, None)
    if state is None or not state.active:
        return
    from pytest_gpuperf import xdist

    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:  # a pytest-xdist worker: the controller reports and writes
        worker_output[xdist.KEY] = xdist.payload(state)
        return
    state.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
    if state.settings.gpuperf_json and state.reporting:
        from pytest_gpuperf.report import terminal as report

        report.write_json(state, Path(state.settings.gpuperf_json))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """pytest-xdist, on the controller: note which worker measured which test, so a worker
    that dies before sending its results can be named with what was lost."""
    node = getattr(report, "node", None)  # set by pytest-xdist on reports from workers
    if node is None or report.when != "call" or not hasattr(node, "gateway"):
        return
    state = node.config.stash.get(SESSION_KEY, None)
    if state is not None and state.active and any(name.endswith("_p50_ms") for name, _ in report.user_properties):
        state.measured_on.setdefault(node.gateway.id, []).append(report.nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist, on the controller: take in what a worker measured."""
    state = node.config.stash.get(SESSION_KEY, None)
    if state is None or not state.active:
        return
    from pytest_gpuperf import xdist

    output = getattr(node, "workeroutput", None)
    measured = state.measured_on.pop(node.gateway.id, [])
    if output and xdist.KEY in output:
        xdist.merge(state, output)
    elif measured:
        state.lost.append(
            f"worker {node.gateway.id} ended without sending its results ({error or 'it crashed'}): "
            f"the measurements of {count(len(measured), 'test')} are lost (no row, no baseline written): "
            + ", ".join(measured)
        )
