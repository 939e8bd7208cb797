"""The pytest plugin entry point (``pytest11: gpuperf``): options, markers and fixtures in every
run; under ``--gpuperf`` it registers the session object (``session.GpuperfSession``), whose
methods are the hooks that measure and report.

Loaded in every pytest run of an environment that has the package, so it imports nothing
heavy; torch is imported only once ``--gpuperf`` asks to measure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_gpuperf import gpus, hooks
from pytest_gpuperf.fixtures import cuda_graph, gpu_profiler, kv_pool
from pytest_gpuperf.judging.budget import KEYS, BudgetError, budget_number, parse_budget
from pytest_gpuperf.judging.testids import checked_machine_key, module_key
from pytest_gpuperf.measuring.consensus import launched_rank
from pytest_gpuperf.report.outputs import folder_problem, output_problem
from pytest_gpuperf.settings import OPTIONS, Settings, add_options, resolve
from pytest_gpuperf.stash import BUDGET_KEY, SESSION_KEY, TOLERANCE_KEY, GpuperfWarning

__all__ = ["cuda_graph", "gpu_profiler", "kv_pool"]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"gpu_budget({', '.join(f'{key}=' for key in KEYS)}): the GPU performance this test must meet under --gpuperf",
    )
    config.addinivalue_line(
        "markers",
        "gpu_baseline(tolerance_pct=): how much worse than its baseline this test may get before it regresses "
        "(default --gpuperf-tolerance, 5)",
    )
    settings = resolve(config)
    if not settings.gpuperf:
        _warn_unused_options(config)
        return
    _check_outputs(settings, config.rootpath)  # before an hour of measuring, not after it
    from pytest_gpuperf.backends import choose_backend  # the measuring stack: only now
    from pytest_gpuperf.session import GpuperfSession, Placement

    gpu, gpu_lock_dir = _assign_gpu(config, settings)  # before the backend starts CUDA in this process
    backend, note = choose_backend(config, settings)
    key = config.hook.pytest_gpuperf_machine_key(config=config, env=backend.env())
    try:
        machine = None if key is None else checked_machine_key(key)
    except ValueError as exc:
        raise pytest.UsageError(f"pytest_gpuperf_machine_key: {exc}") from None
    rank, world_size = launched_rank()
    placement = Placement(rank, world_size, gpu, gpu_lock_dir, machine)
    session = GpuperfSession(settings, backend, note, placement, config.rootpath)
    session.coverage.narrowed = _narrowed_modules(config)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "gpuperf-session")
    config.pluginmanager.register(session.relay, "gpuperf-xdist-relay")


def _check_outputs(settings: Settings, rootdir: Path) -> None:
    """Every output path the run will write at its end, checked now: a usage error lists them all."""
    problems = [
        output_problem(Path(path), flag)
        for flag, path in (
            ("--gpuperf-json", settings.gpuperf_json),
            ("--gpuperf-html", settings.gpuperf_html),
            ("--gpuperf-markdown", settings.gpuperf_markdown),
        )
        if path
    ]
    if settings.gpuperf_update_baselines:
        problems.append(folder_problem(rootdir / settings.gpuperf_baselines_dir, "--gpuperf-baselines-dir"))
    found = [p for p in problems if p]
    if found:
        raise pytest.UsageError("gpuperf cannot write its outputs:\n  " + "\n  ".join(found))


def _warn_unused_options(config: pytest.Config) -> None:
    """gpuperf's other flags do nothing without --gpuperf: say so rather than ignore them."""
    given = [o.flag for o in OPTIONS if o.name != "gpuperf" and config.getoption(o.name) is not None]
    if given:
        config.issue_config_time_warning(
            GpuperfWarning(f"{', '.join(given)} without --gpuperf: nothing is measured, so this does nothing"),
            stacklevel=2,
        )


def _assign_gpu(config: pytest.Config, settings: Settings) -> tuple[str | None, Path | None]:
    """On a pytest-xdist worker: its own GPU, and a lock folder where workers outnumber GPUs. With
    no GPU, the workers share the CPU: they measure in turn, as workers sharing a GPU do (two
    measuring at once on 2 cores slowed each other's host-clock times)."""
    worker = gpus.worker_index(os.environ)
    workerinput = getattr(config, "workerinput", None)
    if worker is None or workerinput is None:
        return None, None
    found = gpus.visible_gpus(settings.gpuperf_gpus, os.environ)
    if not found:
        return gpus.HOST_CPU, gpus.lock_dir()
    gpu = gpus.assign(found, worker)
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    shared = len(found) < int(workerinput.get("workercount", len(found)))
    return gpu, gpus.lock_dir() if shared else None


def _narrowed_modules(config: pytest.Config) -> set[str]:
    """Baseline keys of the modules that arguments name tests inside of (path::test)."""
    base = config.invocation_params.dir
    return {module_key(base / arg.split("::")[0], config.rootpath) for arg in config.args if "::" in arg}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers are read in every run. Every malformed one is reported at once: under --gpuperf as
    one usage error; without it, as a warning, and the tests still run as functional tests."""
    problems = []
    for item in items:
        try:
            _read_markers(item)
        except BudgetError as exc:
            problems.append(f"{item.nodeid}: {exc}")
    if not problems:
        return
    if SESSION_KEY in config.stash:
        raise pytest.UsageError("malformed gpuperf markers:\n  " + "\n  ".join(problems))
    config.issue_config_time_warning(
        GpuperfWarning("malformed gpuperf markers (an error under --gpuperf):\n  " + "\n  ".join(problems)),
        stacklevel=2,
    )


def _read_markers(item: pytest.Item) -> None:
    """The item's budget and tolerance into its stash; raises BudgetError naming the marker."""
    marker = item.get_closest_marker("gpu_budget")
    if marker is not None:
        try:
            item.stash[BUDGET_KEY] = parse_budget(marker.args, marker.kwargs)
        except BudgetError as exc:
            raise BudgetError(f"gpu_budget {exc}") from None
    marker = item.get_closest_marker("gpu_baseline")
    if marker is not None:
        item.stash[TOLERANCE_KEY] = _tolerance_pct(marker)


def _tolerance_pct(marker: pytest.Mark) -> float:
    if marker.args or set(marker.kwargs) != {"tolerance_pct"}:
        raise BudgetError("gpu_baseline takes one keyword argument, tolerance_pct=")
    try:
        return budget_number("tolerance_pct", marker.kwargs["tolerance_pct"])
    except BudgetError as exc:
        raise BudgetError(f"gpu_baseline {exc}") from None
