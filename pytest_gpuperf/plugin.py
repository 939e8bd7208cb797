"""The pytest plugin entry point (``pytest11: gpuperf``): hook implementations only.

Loaded in every pytest run of an environment that has the package, so it
imports nothing heavy; torch is imported only once ``--gpuperf`` asks to measure.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_gpuperf import gpus, hooks
from pytest_gpuperf.budget import BudgetError, parse_budget
from pytest_gpuperf.consensus import launched_rank
from pytest_gpuperf.fixtures import cuda_graph, gpu_profiler, kv_pool
from pytest_gpuperf.session import (
    BUDGET_KEY,
    MEASUREMENTS_KEY,
    SESSION_KEY,
    TOLERANCE_KEY,
    GpuperfSession,
    choose_backend,
)
from pytest_gpuperf.settings import add_options, resolve

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
        session.machine_key = config.hook.pytest_gpuperf_machine_key(config=config, env=session.backend.env())
        session.narrowed = {arg.split("::")[0].removesuffix(".py") for arg in _node_id_args(config)}
        session.rank, session.world_size = launched_rank()
    config.stash[SESSION_KEY] = session


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
        session.gpu_lock_dir = gpus.lock_dir_for(str(workerinput.get("testrunuid", "run")))


def _node_id_args(config: pytest.Config) -> list[str]:
    """Arguments naming tests inside a module (path::test), relative to the rootdir."""
    out = []
    for arg in config.args:
        if "::" in arg:
            path = Path(arg.split("::")[0]).resolve()
            try:
                out.append(path.relative_to(config.rootpath).as_posix() + "::" + arg.split("::", 1)[1])
            except ValueError:
                continue
    return out


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.active:
        return []
    from pytest_gpuperf import report

    return report.header(session)


def pytest_itemcollected(item: pytest.Item) -> None:
    session = item.config.stash.get(SESSION_KEY, None)
    if session is not None and session.active:
        module, _, test = item.nodeid.partition("::")
        session.collected.setdefault(module.removesuffix(".py"), set()).add(test)


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
    value = marker.kwargs.get("tolerance_pct")
    if marker.args or set(marker.kwargs) != {"tolerance_pct"}:
        raise pytest.UsageError(f"{nodeid}: gpu_baseline takes one keyword argument, tolerance_pct=")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise pytest.UsageError(f"{nodeid}: gpu_baseline tolerance_pct={value!r}: expected a number, 0 or more")
    return float(value) / 100.0


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
    session.measure(pyfuncitem, lambda: function(**arguments), None)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    session = item.config.stash[SESSION_KEY]
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    if session.active and "benchmark" in funcargs:
        _synchronize_benchmark(funcargs["benchmark"], session)
    result = yield  # the test's own exception, if any, propagates as itself
    failed = [m for m in item.stash.get(MEASUREMENTS_KEY, []) if session.failing(m)]
    if failed:
        from pytest_gpuperf import report

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
    from pytest_gpuperf import report

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
        from pytest_gpuperf import report

        report.write_json(state, Path(state.settings.gpuperf_json))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist, on the controller: take in what a worker measured."""
    state = node.config.stash.get(SESSION_KEY, None)
    output = getattr(node, "workeroutput", None)
    if state is not None and state.active and output:
        from pytest_gpuperf import xdist

        xdist.merge(state, output)
