"""After a measured test fails, measure it again to explain it: where its memory peak came
from (on a memory budget) and, under --gpuperf-ncu, its kernels under Nsight Compute, in a
child pytest that runs this one test."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import pytest

from pytest_gpuperf.judging.budget import KEYS


def wants_memory(budget: Mapping[str, float]) -> bool:
    """A budget on memory: its failure is explained by where the peak came from."""
    return any(KEYS[key].source == "memory" for key in budget if key in KEYS)


def child_pytest_argv(config: pytest.Config, item: pytest.Item, warmup_calls: int) -> list[str]:
    """A pytest command that runs ``item`` alone, measured, with nothing written."""
    path, separator, rest = item.nodeid.partition("::")
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(config.rootpath / path) + separator + rest,
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(config.rootpath),
        "--gpuperf",
        "--gpuperf-save-traces",
        "none",
        "--gpuperf-warmup-calls",
        str(warmup_calls),
    ]
    if config.inipath is not None:
        argv += ["-c", str(config.inipath)]
    if config.pluginmanager.hasplugin("xdist"):
        argv += ["-n", "0"]  # in the child's own process, where ncu waits for it
    return argv
