"""The plugin's options: each a command-line flag and a same-named ini key.

Command line beats ini beats default. One table defines all three, so a flag
cannot exist without its ini key or its help text. Ini keys are declared with
their type (bool, int, float, string), so pytest 9's native ``[tool.pytest]``
table takes ``gpuperf = true`` and ``gpuperf_rounds = 3`` as well as ``pytest.ini``
takes text. A path is relative to where it was given: the current folder for the
command line, the ini file's folder for an ini key, the rootdir for a default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest

from pytest_gpuperf.measuring.config import ProtocolConfig

# pytest declares int and float ini keys from 8.4 on; before, they are read as text.
_TYPED_INI = pytest.version_tuple >= (8, 4)

DEVICES = ("auto", "cuda", "cpu")
SAVE_TRACES = ("none", "failed", "all")


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, not {text!r}")


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, not {text!r}") from None


def _positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise ValueError(f"must be 1 or more, not {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise ValueError(f"must be 0 or more, not {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, not {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"must be a finite number, 0 or more, not {text}")
    return value


def _path(text: str) -> str:
    if not text.strip() or "\0" in text:
        raise ValueError(f"expected a path, not {text!r}")
    return text


def _seconds(text: str) -> float:
    value = _non_negative_float(text)
    if value <= 0:
        raise ValueError(f"must be above 0, not {text}")
    return value


def _gpu_ids(text: str) -> str:
    from pytest_gpuperf.gpus import parse_gpus

    return ",".join(parse_gpus(text))


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not {text!r}")
        return text

    return parse


@dataclass(frozen=True)
class Option:
    name: str  # the ini key; the flag is --name with dashes
    parse: Callable[[str], Any]
    default: Any
    help: str
    metavar: str | None = None  # None: a boolean flag

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def ini_type(self) -> str:
        """The type pytest reads the ini key as."""
        if self.metavar is None:
            return "bool"
        if _TYPED_INI and self.parse in (_positive_int, _non_negative_int):
            return "int"
        if _TYPED_INI and self.parse in (_non_negative_float, _seconds):
            return "float"
        return "string"

    @property
    def is_path(self) -> bool:
        return self.parse is _path


OPTIONS = (
    Option("gpuperf", _flag, False, "measure tests marked gpu_budget and tests using gpu_profiler"),
    Option(
        "gpuperf_device",
        _choice(DEVICES),
        "auto",
        "auto (CUDA if present, else the host clock), cuda or cpu",
        "{auto,cuda,cpu}",
    ),
    Option("gpuperf_require_gpu", _flag, False, "make a missing GPU, or a budget the device cannot check, an error"),
    Option(
        "gpuperf_gpus",
        _gpu_ids,
        None,
        "GPUs to share among pytest-xdist workers, one per worker (ids, e.g. 0,1; default: CUDA_VISIBLE_DEVICES, "
        "else every GPU NVML sees); with fewer GPUs than workers, measurements on a GPU take turns",
        "IDS",
    ),
    Option("gpuperf_warmup_calls", _positive_int, 5, "warmup: at least this many calls (default 5)", "N"),
    Option(
        "gpuperf_warmup_ms", _non_negative_float, 100.0, "warmup: at least this long, then until steady (100)", "MS"
    ),
    Option("gpuperf_rounds", _positive_int, 10, "timed rounds (default 10)", "N"),
    Option("gpuperf_round_ms", _non_negative_float, 50.0, "minimum length of a timed round (default 50)", "MS"),
    Option("gpuperf_max_rounds", _positive_int, 30, "rounds at most, when a budget is too close to call (30)", "N"),
    Option(
        "gpuperf_profile_steps",
        _non_negative_int,
        3,
        "steps in the profiled pass (default 3; 0: no profiled pass, latency and memory only)",
        "N",
    ),
    Option(
        "gpuperf_host_work_calls",
        _non_negative_int,
        3,
        "calls of each step counted for its host work, Python lines and calls, apart from the timed ones "
        "(default 3; 0: not counted)",
        "N",
    ),
    Option(
        "gpuperf_flush_l2",
        _flag,
        False,
        "clear the GPU's L2 cache before each timed call (cold-cache timing, "
        "as triton's do_bench; off: the warm cache of a real loop)",
    ),
    Option(
        "gpuperf_baselines_dir",
        _path,
        "baselines",
        "baseline folder (default: baselines in the rootdir); files are <dir>/<machine>/<module>.yaml",
        "DIR",
    ),
    Option(
        "gpuperf_update_baselines",
        _flag,
        False,
        "record baselines of measured tests that are new or changed (unchanged entries stay as they are); "
        "an update over whole modules also removes entries of tests that no longer exist",
    ),
    Option("gpuperf_strict_baselines", _flag, False, "fail a measured test that has no baseline to compare with"),
    Option(
        "gpuperf_tolerance",
        _non_negative_float,
        5.0,
        "percent a metric may get worse than its baseline before it regresses (default 5); "
        "per test: @pytest.mark.gpu_baseline(tolerance_pct=...)",
        "PCT",
    ),
    Option("gpuperf_json", _path, None, "write every measurement to this JSON file", "PATH"),
    Option(
        "gpuperf_html",
        _path,
        None,
        "write a self-contained HTML report (per test: round medians against the baseline's, the verdict's "
        "interval, budgets, kernels that changed, the bottleneck) to this file",
        "PATH",
    ),
    Option(
        "gpuperf_markdown",
        _path,
        None,
        "append a Markdown summary (a table, and each failure's text) to this file, "
        "e.g. --gpuperf-markdown $GITHUB_STEP_SUMMARY",
        "PATH",
    ),
    Option(
        "gpuperf_ncu",
        _flag,
        False,
        "for each failing test, run it again under Nsight Compute (ncu, from PATH or /usr/local/cuda/bin) and "
        "name the step's top kernels with their compute and memory throughput against the GPU's peak",
    ),
    Option(
        "gpuperf_trace_dir",
        _path,
        "gpuperf-traces",
        "where profiler traces are saved (default: gpuperf-traces in the rootdir)",
        "DIR",
    ),
    Option(
        "gpuperf_save_traces",
        _choice(SAVE_TRACES),
        "failed",
        "which traces to keep: none, failed or all (failed)",
        "{none,failed,all}",
    ),
    Option(
        "gpuperf_timeout",
        _seconds,
        900.0,
        "seconds one measurement (warmup, rounds, profiled pass) may take before its test fails (default 900)",
        "S",
    ),
)


@dataclass(frozen=True)
class Settings:
    gpuperf: bool
    gpuperf_device: str
    gpuperf_require_gpu: bool
    gpuperf_gpus: str | None
    gpuperf_warmup_calls: int
    gpuperf_warmup_ms: float
    gpuperf_rounds: int
    gpuperf_round_ms: float
    gpuperf_max_rounds: int
    gpuperf_profile_steps: int
    gpuperf_host_work_calls: int
    gpuperf_flush_l2: bool
    gpuperf_baselines_dir: str
    gpuperf_update_baselines: bool
    gpuperf_strict_baselines: bool
    gpuperf_tolerance: float
    gpuperf_json: str | None
    gpuperf_html: str | None
    gpuperf_markdown: str | None
    gpuperf_ncu: bool
    gpuperf_trace_dir: str
    gpuperf_save_traces: str
    gpuperf_timeout: float

    def protocol(self) -> ProtocolConfig:
        """What the measurement protocol reads of these settings."""
        return ProtocolConfig(
            warmup_calls=self.gpuperf_warmup_calls,
            warmup_ms=self.gpuperf_warmup_ms,
            rounds=self.gpuperf_rounds,
            round_ms=self.gpuperf_round_ms,
            max_rounds=self.gpuperf_max_rounds,
            profile_steps=self.gpuperf_profile_steps,
            host_work_calls=self.gpuperf_host_work_calls,
            host_clock_judges_latency=self.gpuperf_device == "cpu",
        )


assert [f.name for f in fields(Settings)] == [o.name for o in OPTIONS]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("gpuperf", "GPU performance budgets (pytest-gpuperf)")
    for option in OPTIONS:
        help_text = f"{option.help} [ini: {option.name}]"
        if option.metavar is None:
            group.addoption(
                option.flag, action="store_const", const="true", default=None, dest=option.name, help=help_text
            )
        else:
            group.addoption(option.flag, default=None, dest=option.name, metavar=option.metavar, help=help_text)
        parser.addini(option.name, help=option.help, type=option.ini_type, default=None)  # type: ignore[arg-type]


def _ini_value(config: pytest.Config, option: Option) -> Any:
    try:
        return config.getini(option.name)
    except (pytest.UsageError, ValueError, TypeError) as exc:  # pytest's own conversion of a typed key failed
        # pytest says "invalid literal for int() with base 10: 'many'": say it in our words.
        quoted = re.search(r"'(.*)'$", str(exc))
        problem = str(exc)
        if quoted is not None:
            try:
                option.parse(quoted.group(1))
            except ValueError as ours:
                problem = str(ours)
        raise pytest.UsageError(f"ini key {option.name}: {problem}") from None


def _text(raw: Any) -> str:
    """A value as the parsers read it: TOML's true is the text true, not Python's True."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def resolve(config: pytest.Config) -> Settings:
    """Command line, else ini, else the default; a bad value is a usage error naming its source."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        cli = config.getoption(option.name)
        ini = _ini_value(config, option)
        if cli is not None:
            raw, source, base = cli, option.flag, config.invocation_params.dir
        elif ini not in (None, "", []):
            raw, source = ini, f"ini key {option.name}"
            base = config.inipath.parent if config.inipath is not None else config.rootpath
        else:
            raw, source, base = option.default, "default", config.rootpath
            if raw is None or not option.is_path:
                values[option.name] = raw
                continue
        try:
            value = option.parse(_text(raw))
        except ValueError as exc:
            raise pytest.UsageError(f"{source}: {exc}") from None
        values[option.name] = str(base / Path(value)) if option.is_path else value
    settings = Settings(**values)
    if settings.gpuperf_max_rounds < settings.gpuperf_rounds:
        raise pytest.UsageError(
            f"gpuperf_max_rounds ({settings.gpuperf_max_rounds}) is below gpuperf_rounds ({settings.gpuperf_rounds})"
        )
    return settings
