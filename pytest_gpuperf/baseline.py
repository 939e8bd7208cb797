"""Baselines in YAML: ``<dir>/<machine-key>/<test module path>.yaml``, one entry per test.

Files are read with the safe loader (a ``!!python/object`` tag is refused), and a
malformed one is reported by file and line and never overwritten. Output is
deterministic: sorted keys, numbers to four significant digits, one layout, so a
file re-rendered from the same entries is byte-identical. Writes are atomic: a
temporary file in the same folder, then a rename.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from pytest_gpuperf.model import Entry, EnvInfo

SCHEMA = 1
DIGITS = 4  # significant digits kept for every number


class BaselineError(Exception):
    """A baseline file that cannot be used; names the file and, where known, the line."""

    def __init__(self, path: Path, problem: str, line: int | None = None) -> None:
        self.path, self.problem, self.line = path, problem, line
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Machine:
    """What a baseline was recorded with; a baseline is compared only on the same."""

    gpu: str
    driver: str | None = None
    cuda: str | None = None
    torch: str | None = None

    @classmethod
    def of(cls, env: EnvInfo) -> Machine:
        # Plain str: torch.__version__ is a str subclass that the safe YAML dumper refuses.
        text = [None if v is None else str(v) for v in (env.driver, env.cuda, env.torch)]
        return cls(str(env.device), *text)

    def differences(self, other: Machine) -> list[str]:
        """How ``other`` (this run) differs from this (the baseline), in words."""
        return [
            f"{f.name} {getattr(self, f.name) or 'unknown'} in the baseline, {getattr(other, f.name) or 'unknown'} here"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]


def machine_key(env: EnvInfo) -> str:
    """The folder a machine's baselines live in: its device name, lowercased, in dashes."""
    return re.sub(r"[^a-z0-9]+", "-", env.device.lower()).strip("-") or "unknown"


@dataclass
class BaselineFile:
    path: Path
    machine: Machine
    entries: dict[str, Entry]
    text: str  # as read, to write only when something changed


def _round(value: float) -> float | int:
    if value == 0 or not math.isfinite(value):
        return value
    digits = DIGITS - 1 - math.floor(math.log10(abs(value)))
    rounded = round(value, digits)
    return int(rounded) if float(rounded).is_integer() and abs(rounded) < 1e15 else rounded


def entry_to_dict(entry: Entry) -> dict[str, Any]:
    """The entry as YAML-ready data; absent metrics are left out."""
    out: dict[str, Any] = {}
    for f in fields(Entry):
        value = getattr(entry, f.name)
        if value is None or value == () or value == {}:
            continue
        if isinstance(value, dict):
            value = {name: _round(v) for name, v in sorted(value.items())}
        elif isinstance(value, tuple):
            value = _FlowList(_round(v) for v in value)
        elif isinstance(value, float):
            value = _round(value)
        out[f.name] = value
    return out


class _FlowList(list[Any]):
    """Rendered on one line: a list of numbers reads best as [a, b, c]."""


class _Dumper(yaml.SafeDumper):
    pass


def _represent_flow_list(dumper: yaml.SafeDumper, data: _FlowList) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_Dumper.add_representer(_FlowList, _represent_flow_list)


def render(machine: Machine, entries: dict[str, Entry]) -> str:
    document = {
        "schema": SCHEMA,
        "machine": {f.name: getattr(machine, f.name) for f in fields(Machine) if getattr(machine, f.name)},
        "tests": {name: entry_to_dict(entries[name]) for name in sorted(entries)},
    }
    text: str = yaml.dump(
        document, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=10_000, allow_unicode=True
    )
    return text


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: an interrupted
    write leaves the old file as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- reading ------------------------------------------------------------------------------------------


def read(path: Path) -> BaselineFile | None:
    """The file's baselines; None if there is no file. Raises BaselineError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(path, f"cannot be read: {exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise BaselineError(path, f"not valid baseline YAML: {problem}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise BaselineError(path, f"not valid baseline YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise BaselineError(path, "expected a mapping with schema, machine and tests", 1)
    lines = _key_lines(node)
    schema = data.get("schema")
    if schema != SCHEMA:
        raise BaselineError(
            path,
            f"schema {schema!r} is not one this pytest-gpuperf reads (it reads schema {SCHEMA}); "
            "upgrade pytest-gpuperf, or move the file away and re-record with --gpuperf-update-baselines",
            lines.get(("schema",), 1),
        )
    machine = _machine(path, data.get("machine"), lines)
    tests = data.get("tests") or {}
    if not isinstance(tests, dict):
        raise BaselineError(path, "tests: expected a mapping of test id to entry", lines.get(("tests",)))
    entries = {}
    for name, raw in tests.items():
        entries[str(name)] = _entry(path, str(name), raw, lines)
    return BaselineFile(path, machine, entries, text)


def _key_lines(root: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """1-based line of every mapping key, by its path from the root (three levels suffice)."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, prefix: tuple[str, ...]) -> None:
        if not isinstance(node, yaml.MappingNode) or len(prefix) > 2:
            return
        for key, value in node.value:
            path = (*prefix, str(key.value))
            lines[path] = key.start_mark.line + 1
            walk(value, path)

    if root is not None:
        walk(root, ())
    return lines


def _machine(path: Path, raw: Any, lines: dict[tuple[str, ...], int]) -> Machine:
    if not isinstance(raw, dict) or not isinstance(raw.get("gpu"), str):
        raise BaselineError(path, "machine: expected a mapping with at least gpu", lines.get(("machine",), 1))
    unknown = set(raw) - {f.name for f in fields(Machine)}
    if unknown:
        raise BaselineError(path, f"machine: unknown keys {sorted(unknown)}", lines.get(("machine",)))
    text = {str(k): None if v is None else str(v) for k, v in raw.items()}
    return Machine(str(raw["gpu"]), text.get("driver"), text.get("cuda"), text.get("torch"))


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"expected a number, 0 or more, not {value!r}")
    return float(value)


def _positive(value: Any) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError(f"expected a number above 0, not {value!r}")
    return number


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a whole number, 1 or more, not {value!r}")
    return value


def _series(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a non-empty list of numbers, not {value!r}")
    return tuple(_positive(v) for v in value)


def _interval(value: Any) -> tuple[float, float]:
    series = _series(value)
    if len(series) != 2 or series[0] > series[1]:
        raise ValueError(f"expected [low, high], not {value!r}")
    return series[0], series[1]


def _kernel_counts(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of kernel name to launches per step, not {value!r}")
    return {str(name): _number(count) for name, count in value.items()}


@dataclass(frozen=True)
class _Field:
    parse: Callable[[Any], Any]
    required: bool = False


ENTRY_FIELDS = {
    "samples": _Field(_count, True),
    "p50_ms": _Field(_positive, True),
    "p99_ms": _Field(_positive, True),
    "p99_ci_ms": _Field(_interval, True),
    "round_medians_ms": _Field(_series, True),
    "round_clock_mhz": _Field(_series),
    "peak_mem_mb": _Field(_number),
    "items_per_s": _Field(_positive),
    "gpu_active_pct": _Field(_number),
    "dispatch_ratio": _Field(_number),
    "kernels_per_step": _Field(_number),
    "launches_per_step": _Field(_number),
    "kernels": _Field(_kernel_counts),
}
assert list(ENTRY_FIELDS) == [f.name for f in fields(Entry)]


def _entry(path: Path, name: str, raw: Any, lines: dict[tuple[str, ...], int]) -> Entry:
    line = lines.get(("tests", name))

    def bad(problem: str, key: str | None = None) -> BaselineError:
        where = lines.get(("tests", name, key), line) if key else line
        return BaselineError(path, f"tests.{name}: {problem}", where)

    if not isinstance(raw, dict):
        raise bad("expected a mapping of metrics")
    unknown = set(raw) - set(ENTRY_FIELDS)
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)}", sorted(unknown)[0])
    values: dict[str, Any] = {}
    for key, kind in ENTRY_FIELDS.items():
        if key not in raw:
            if kind.required:
                raise bad(f"missing {key}")
            continue
        try:
            values[key] = kind.parse(raw[key])
        except (TypeError, ValueError) as exc:
            raise bad(f"{key}: {exc}", key) from None
    return Entry(**values)


def entry_from_dict(data: dict[str, Any]) -> Entry:
    """An entry from ``entry_to_dict``'s output (as sent by an xdist worker)."""
    return Entry(**{key: ENTRY_FIELDS[key].parse(value) for key, value in data.items()})


# --- the session's store ------------------------------------------------------------------------------


def split_test_id(test_id: str) -> tuple[str, str]:
    """``dir/test_mod.py::Class::test[p]#2`` -> (``dir/test_mod``, ``Class::test[p]#2``)."""
    module, _, test = test_id.partition("::")
    return module.removesuffix(".py"), test


def base_test(name: str) -> str:
    """The test an entry belongs to: a second measurement in one test is ``test#2``."""
    head, hash_, tail = name.rpartition("#")
    return head if hash_ and tail.isdigit() else name


@dataclass(frozen=True)
class Lookup:
    path: Path
    entry: Entry | None  # set when there is a baseline to compare with
    reason: str = ""  # why not: new, or recorded on another setup
    error: BaselineError | None = None
    other_setup: bool = False  # an entry exists, recorded with another driver, CUDA or torch


class BaselineStore:
    """The baselines of one machine key: read on first use, staged during the run,
    written once at the end."""

    def __init__(self, directory: Path, key: str, machine: Machine, rootdir: Path) -> None:
        self.directory = directory / key
        self.machine = machine
        self.rootdir = rootdir
        self._files: dict[Path, BaselineFile | BaselineError | None] = {}
        self.staged: dict[str, dict[str, Entry]] = {}  # module -> test -> entry

    def path(self, module: str) -> Path:
        return self.directory / f"{module}.yaml"

    def _file(self, path: Path) -> BaselineFile | BaselineError | None:
        if path not in self._files:
            try:
                self._files[path] = read(path)
            except BaselineError as exc:
                self._files[path] = exc
        return self._files[path]

    def lookup(self, module: str, test: str) -> Lookup:
        path = self.path(module)
        found = self._file(path)
        if isinstance(found, BaselineError):
            return Lookup(path, None, str(found), found)
        if found is None or test not in found.entries:
            return Lookup(path, None, f"no baseline in {path}")
        differences = found.machine.differences(self.machine)
        if differences:
            return Lookup(path, None, "recorded on another setup: " + "; ".join(differences), other_setup=True)
        return Lookup(path, found.entries[test])

    def stage(self, module: str, test: str, entry: Entry) -> None:
        self.staged.setdefault(module, {})[test] = entry

    def stale(self, collected: dict[str, set[str]], narrowed: set[str]) -> dict[str, list[str]]:
        """Entries of tests that no longer exist, by module: the module was collected
        (not narrowed to some of its tests) and the test was not, or the module's file is gone."""
        found: dict[str, list[str]] = {}
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.rglob("*.yaml")):
            module = path.relative_to(self.directory).with_suffix("").as_posix()
            gone = not (self.rootdir / f"{module}.py").exists()
            if not gone and (module not in collected or module in narrowed):
                continue
            baseline = self._file(path)
            if not isinstance(baseline, BaselineFile):
                continue
            tests = collected.get(module, set())
            names = [name for name in baseline.entries if gone or base_test(name) not in tests]
            if names:
                found[module] = names
        return found

    def flush(self, stale: dict[str, list[str]], remove_stale: bool) -> list[str]:
        """Write every file with a staged or removed entry; what was done, in lines."""
        lines = []
        for module in sorted(set(self.staged) | (set(stale) if remove_stale else set())):
            path = self.path(module)
            existing = self._file(path)
            if isinstance(existing, BaselineError):
                lines.append(f"not written, the file is unreadable: {existing}")
                continue
            staged = self.staged.get(module, {})
            entries: dict[str, Entry] = {}
            if existing is not None and not existing.machine.differences(self.machine):
                entries.update(existing.entries)
            elif existing is not None:
                dropped = sorted(set(existing.entries) - set(staged))
                if dropped:
                    why = "; ".join(existing.machine.differences(self.machine))
                    lines.append(
                        f"{path}: recorded on another setup ({why}); re-recorded here, dropping "
                        f"{len(dropped)} entries not measured in this run: {', '.join(dropped)}"
                    )
            entries.update(staged)
            removed = [name for name in stale.get(module, []) if name in entries] if remove_stale else []
            for name in removed:
                del entries[name]
            text = render(self.machine, entries)
            if existing is not None and text == existing.text:
                continue
            if not entries:
                path.unlink(missing_ok=True)
                lines.append(f"{path}: removed (no tests left)")
                continue
            write_atomic(path, text)
            parts = [f"{len(staged)} recorded"] if staged else []
            parts += [f"{len(removed)} removed"] if removed else []
            lines.append(f"{path}: written ({', '.join(parts)})")
        return lines
