"""Baselines in YAML: ``<dir>/<machine-key>/<test module path>.yaml``, one entry per test.

Files are read with the safe loader (a ``!!python/object`` tag is refused), and a
malformed one is reported by file and line and never overwritten. Output is
deterministic: sorted keys, numbers to four significant digits, one layout, so a
file re-rendered from the same entries is byte-identical. Writes are atomic: a
temporary file in the same folder, then a rename.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import yaml

from pytest_gpuperf.errors import GpuperfError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from pytest_gpuperf.judging.entry import COUNT_FIELDS, Entry
from pytest_gpuperf.judging.registry import COUNT, METRICS, NUMBER, PAIR, PER_NAME, POSITIVE, SERIES, TEXT, kept
from pytest_gpuperf.judging.testids import base_test, module_file
from pytest_gpuperf.judging.text import WRITE_FAILED, brief, count, finite
from pytest_gpuperf.version import __version__

SCHEMA = 1
DIGITS = 4  # significant digits kept for every number but counts
COUNT_DECIMALS = 6


class BaselineError(GpuperfError):
    """A baseline file that cannot be used; names the file and, where known, the line."""

    def __init__(self, path: Path, problem: str, line: int | None = None) -> None:
        self.path, self.problem, self.line = path, problem, line
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")

    @property
    def recovery(self) -> str:
        """What to do about it."""
        fix = f"fix line {self.line}, or " if self.line is not None else ""
        return f"{fix}delete {self.path} and re-record its tests with --gpuperf-update-baselines"


class Setup(Protocol):
    """Where a measurement was taken, as a baseline records it (a backend's EnvInfo is one)."""

    @property
    def device(self) -> str: ...

    @property
    def driver(self) -> str | None: ...

    @property
    def cuda(self) -> str | None: ...

    @property
    def torch(self) -> str | None: ...


@dataclass(frozen=True)
class Machine:
    """What a baseline was recorded with; a baseline is compared only on the same."""

    gpu: str
    driver: str | None = None
    cuda: str | None = None
    torch: str | None = None

    @classmethod
    def of(cls, env: Setup) -> Machine:
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


def machine_key(env: Setup) -> str:
    """The folder a machine's baselines live in: its device name, lowercased, in dashes."""
    return re.sub(r"[^a-z0-9]+", "-", env.device.lower()).strip("-") or "unknown"


@dataclass
class BaselineFile:
    path: Path
    machine: Machine
    entries: dict[str, Entry]
    text: str  # as read, to write only when something changed
    unknown: dict[str, list[str]] = field(default_factory=dict)  # test -> fields this release does not know
    written_by: str = ""  # the release that wrote the file, where it says

    def unknown_note(self, test: str) -> str:
        """What of ``test``'s entry was not read, and why (empty: everything was)."""
        fields_ = self.unknown.get(test)
        if not fields_:
            return ""
        writer = self.written_by or "a release that does not say which"
        return (
            f"{self.path}: {test}: {', '.join(fields_)}: not known to pytest-gpuperf {__version__} (the file was "
            f"written by {writer}); compared on the rest; an update run (--gpuperf-update-baselines) rewrites it"
        )


def _round(value: float) -> float | int:
    if value == 0 or not math.isfinite(value):
        return value
    digits = DIGITS - 1 - math.floor(math.log10(abs(value)))
    rounded = round(value, digits)
    return int(rounded) if float(rounded).is_integer() and abs(rounded) < 1e15 else rounded


def _round_count(value: float) -> float | int:
    """A count per step (a whole count over the profiled steps) to six decimals: exact enough to
    compare exactly, however large."""
    rounded = round(value, COUNT_DECIMALS)
    return int(rounded) if float(rounded).is_integer() and abs(rounded) < 1e15 else rounded


def entry_to_dict(entry: Entry) -> dict[str, Any]:
    """The entry as YAML-ready data, in the registry's order; absent metrics are left out."""
    out: dict[str, Any] = {}
    for name, value in entry.values().items():
        rounding = _round_count if name in COUNT_FIELDS else _round
        if isinstance(value, Mapping):
            value = {key: rounding(v) for key, v in sorted(value.items())}
        elif isinstance(value, tuple):
            value = _FlowList(rounding(v) for v in value)
        elif isinstance(value, float):
            value = rounding(value)
        out[name] = value
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
        "written_by": f"pytest-gpuperf {__version__}",
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
    write leaves the old file as it was. A symbolic link is written through (its target
    is replaced); the file keeps its mode, and a new one gets 0666 less the umask."""
    target = path.resolve() if path.is_symlink() else path
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    restore = _exit_on_terminate()
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        restore()


def _exit_on_terminate() -> Callable[[], None]:
    """While a file is written, SIGTERM (a CI job cancelled) raises SystemExit, so the temporary
    file is removed on the way out; returns what puts the previous handler back. Only the main
    thread can set a handler: elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return lambda: None  # someone handles it already (pytest-timeout, the application)

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _umask() -> int:
    current = os.umask(0o022)  # reading the umask means setting it: set it straight back
    os.umask(current)
    return current


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on a baseline folder (flock on the folder itself: no lock file is
    left behind), so two pytest processes updating one file merge instead of overwriting."""
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # Windows: no flock; concurrent updates of one file are not merged there
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # a file system that cannot lock folders (network mounts): unlocked
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# --- reading ------------------------------------------------------------------------------------------

MAX_FILE_BYTES = 32 * 2**20  # thousands of tests fit in a few MB
MAX_DEPTH = 8  # a baseline file nests four levels: tests, a test, its kernels, a count

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where present: much faster


def read(path: Path) -> BaselineFile | None:
    """The file's baselines; None if there is no file. Raises BaselineError."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise BaselineError(path, f"{size} bytes: larger than a baseline file can be ({MAX_FILE_BYTES} bytes)")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(path, f"cannot be read: {exc}") from None
    if not text.strip():
        return None  # an empty file (a write cut short by hand, a placeholder): as if there were none
    return parse(path, text)


def parse(path: Path, text: str) -> BaselineFile:
    """Baselines from a file's text; ``path`` names it in errors. Raises BaselineError."""
    node = _compose(path, text)
    _check_shape(path, node)
    loader = _Loader("")
    try:
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:  # a tag the safe loader refuses (!!python/object...)
        raise BaselineError(path, f"not valid baseline YAML: {_problem(exc)}", _error_line(exc, text)) from None
    except (ValueError, OverflowError, TypeError, RecursionError) as exc:  # an integer of 5000 digits
        line = node.start_mark.line + 1 if node is not None else None
        raise BaselineError(path, f"not valid baseline YAML: {brief(str(exc), 200)}", line) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise BaselineError(path, "expected a mapping with schema, machine and tests", 1)
    lines = _key_lines(node)
    schema = data.get("schema")
    if schema != SCHEMA:
        raise BaselineError(
            path,
            f"schema {brief(schema)} is not one this pytest-gpuperf reads (it reads schema {SCHEMA}); "
            "upgrade pytest-gpuperf, or move the file away and re-record with --gpuperf-update-baselines",
            lines.get(("schema",), 1),
        )
    machine = _machine(path, data.get("machine"), lines)
    tests = data.get("tests") or {}
    if not isinstance(tests, dict):
        raise BaselineError(path, "tests: expected a mapping of test id to entry", lines.get(("tests",)))
    entries, unknown = {}, {}
    for name, raw in tests.items():
        entries[str(name)], ignored = _entry(path, str(name), raw, lines)
        if ignored:
            unknown[str(name)] = ignored
    writer = data.get("written_by")
    return BaselineFile(path, machine, entries, text, unknown, writer if isinstance(writer, str) else "")


def _compose(path: Path, text: str) -> yaml.Node | None:
    """The document's node graph (not yet Python values); syntax errors name the line."""
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the pure-Python reader refuses control characters here
        raise BaselineError(path, f"not valid baseline YAML: {_problem(exc)}", _error_line(exc, text)) from None
    try:
        node: yaml.Node | None = loader.get_single_node()
        return node
    except yaml.YAMLError as exc:
        raise BaselineError(path, f"not valid baseline YAML: {_problem(exc)}", _error_line(exc, text)) from None
    except RecursionError:
        raise BaselineError(path, "not valid baseline YAML: nested too deeply") from None
    finally:
        loader.dispose()


def _problem(exc: yaml.YAMLError) -> str:
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    return brief(" ".join(p for p in parts if p) or str(exc), 200).strip("'\"")


def _error_line(exc: yaml.YAMLError, text: str) -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    position = getattr(exc, "position", None)  # a ReaderError: a character the reader refuses
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else None


def _check_shape(path: Path, root: yaml.Node | None) -> None:
    """Refuse what no baseline file holds and what would blow up when built: anchors and
    aliases (an alias bomb of a few hundred bytes expands to gigabytes), deep nesting."""
    if root is None:
        return
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        line = node.start_mark.line + 1
        if id(node) in seen:
            raise BaselineError(path, "anchors and aliases (& and *) are not used in baseline files", line)
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise BaselineError(path, f"nested more than {MAX_DEPTH} levels deep", line)
        if isinstance(node, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)


def _key_lines(root: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """1-based line of every mapping key, by its path from the root (three levels suffice)."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, prefix: tuple[str, ...]) -> None:
        if not isinstance(node, yaml.MappingNode) or len(prefix) > 2:
            return
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            path = (*prefix, str(key.value))
            lines[path] = key.start_mark.line + 1
            walk(value, path)

    if root is not None:
        walk(root, ())
    return lines


def _machine(path: Path, raw: Any, lines: dict[tuple[str, ...], int]) -> Machine:
    if not isinstance(raw, dict) or not isinstance(raw.get("gpu"), str):
        raise BaselineError(path, "machine: expected a mapping with at least gpu", lines.get(("machine",), 1))
    unknown = set(map(str, raw)) - {f.name for f in fields(Machine)}
    if unknown:
        raise BaselineError(path, f"machine: unknown keys {brief(sorted(unknown))}", lines.get(("machine",)))
    if not all(isinstance(v, (str, int, float)) or v is None for v in raw.values()):
        raise BaselineError(path, "machine: expected text values", lines.get(("machine",)))
    text = {str(k): None if v is None else str(v) for k, v in raw.items()}
    return Machine(str(raw["gpu"]), text.get("driver"), text.get("cuda"), text.get("torch"))


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, 0 or more, not {brief(value)}")
    number = finite(value)
    if number is None or number < 0:
        raise ValueError(f"expected a finite number, 0 or more, not {brief(value)}")
    return number


def _positive(value: Any) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError(f"expected a number above 0, not {brief(value)}")
    return number


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a whole number, 1 or more, not {brief(value)}")
    return value


def _series(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a non-empty list of numbers, not {brief(value)}")
    return tuple(_positive(v) for v in value)


def _interval(value: Any) -> tuple[float, float]:
    series = _series(value)
    if len(series) != 2 or series[0] > series[1]:
        raise ValueError(f"expected [low, high], not {brief(value)}")
    return series[0], series[1]


def _per_kernel(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of kernel name to a number per step, not {brief(value)}")
    return {str(name): _number(count) for name, count in value.items()}


def _text(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ValueError(f"expected text of at most {MAX_TEXT} characters, not {brief(value)}")
    return value


MAX_TEXT = 200
# How each shape of value in the registry is read from a baseline file.
PARSERS: dict[str, Callable[[Any], Any]] = {
    COUNT: _count,
    NUMBER: _number,
    POSITIVE: _positive,
    SERIES: _series,
    PAIR: _interval,
    PER_NAME: _per_kernel,
    TEXT: _text,
}
ENTRY_FIELDS = {m.name: m for m in METRICS if kept(m)}


def _entry(path: Path, name: str, raw: Any, lines: dict[tuple[str, ...], int]) -> tuple[Entry, list[str]]:
    """The entry, and the fields of it this release does not know (a newer one wrote them): left
    out, so the rest is still compared."""
    line = lines.get(("tests", name))

    def bad(problem: str, key: str | None = None) -> BaselineError:
        where = lines.get(("tests", name, key), line) if key else line
        return BaselineError(path, f"tests.{name}: {problem}", where)

    if not isinstance(raw, dict):
        raise bad("expected a mapping of metrics")
    unknown = sorted(set(map(str, raw)) - set(ENTRY_FIELDS))
    values: dict[str, Any] = {}
    for key, metric in ENTRY_FIELDS.items():
        if key not in raw:
            if metric.required:
                raise bad(f"missing {key}")
            continue
        try:
            values[key] = PARSERS[metric.shape](raw[key])
        except (TypeError, ValueError, OverflowError) as exc:
            raise bad(f"{key}: {exc}", key) from None
    return Entry.of(**values), [f"{key} (line {lines.get(('tests', name, key), line)})" for key in unknown]


def entry_from_dict(data: dict[str, Any]) -> Entry:
    """An entry from ``entry_to_dict``'s output (as sent by an xdist worker)."""
    values = {}
    for key, value in data.items():
        if key not in ENTRY_FIELDS:
            raise ValueError(f"{key}: no such metric")
        try:
            values[key] = PARSERS[ENTRY_FIELDS[key].shape](value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{key}: {exc}") from None
    return Entry.of(**values)


# --- the session's store ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    path: Path
    entry: Entry | None  # set when there is a baseline to compare with
    reason: str = ""  # why not: new, or recorded on another setup
    error: BaselineError | None = None
    other_setup: bool = False  # an entry exists, recorded with another driver, CUDA or torch
    unknown: str = ""  # fields of the entry this release did not read, and what to do


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
            return Lookup(path, None, f"{found}; {found.recovery}", found)
        if found is None or test not in found.entries:
            return Lookup(path, None, f"no baseline in {path}")
        differences = found.machine.differences(self.machine)
        if differences:
            return Lookup(path, None, "recorded on another setup: " + "; ".join(differences), other_setup=True)
        return Lookup(path, found.entries[test], unknown=found.unknown_note(test))

    def stage(self, module: str, test: str, entry: Entry) -> str | None:
        """Stage ``entry`` to be written; refused (with why) if it could not be read back,
        since a file that cannot be read blocks every later update of its module."""
        try:
            entry_from_dict(entry_to_dict(entry))
        except (TypeError, ValueError) as exc:
            return f"{module}.py::{test}: not recorded: {exc}"
        self.staged.setdefault(module, {})[test] = entry
        return None

    def stale(self, collected: dict[str, set[str]], narrowed: set[str]) -> dict[str, list[str]]:
        """Entries of tests that no longer exist, by module: the module was collected
        (not narrowed to some of its tests) and the test was not, or the module's file is gone."""
        found: dict[str, list[str]] = {}
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.rglob("*.yaml")):
            module = path.relative_to(self.directory).with_suffix("").as_posix()
            gone = not module_file(self.rootdir, module).exists()
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

    def flush(self, stale: dict[str, list[str]], remove_stale: bool, whole: bool) -> list[str]:
        """Write every file with a staged or removed entry; what was done, in lines.

        Each file is re-read under the folder's lock and this run's changes applied to what
        is there now, so two processes updating one file keep each other's entries.
        ``whole``: the run measured whole modules (no -k, -m or test ids), so a file recorded
        on another setup may be replaced by this run's entries alone."""
        modules = sorted(set(self.staged) | (set(stale) if remove_stale else set()))
        if not modules:
            return []  # nothing to write: a plain run makes no baseline folder
        lines = []
        try:
            with folder_lock(self.directory):
                for module in modules:
                    try:
                        line = self._flush_module(module, stale.get(module, []) if remove_stale else [], whole)
                    except OSError as exc:
                        line = f"{self.path(module)}: {WRITE_FAILED}: {exc.strerror or exc}"
                    if line:
                        lines.append(line)
        except OSError as exc:  # the folder itself cannot be made
            return [f"{self.directory}: baselines {WRITE_FAILED}: {exc.strerror or exc}"]
        return lines

    def _flush_module(self, module: str, removed_names: list[str], whole: bool) -> str | None:
        path = self.path(module)
        try:
            existing = read(path)
        except BaselineError as exc:
            return f"not written, the file is unreadable: {exc}; {exc.recovery}"
        staged = self.staged.get(module, {})
        entries: dict[str, Entry] = {}
        note = ""
        if existing is not None and not existing.machine.differences(self.machine):
            entries.update(existing.entries)
        elif existing is not None:
            dropped = sorted(set(existing.entries) - set(staged))
            why = "; ".join(existing.machine.differences(self.machine))
            if dropped and not whole:
                return (
                    f"{path}: not written: recorded on another setup ({why}), and this run measured only part "
                    f"of the module; re-record it whole (--gpuperf-update-baselines without -k, -m or test ids)"
                )
            if dropped:
                note = (
                    f"; recorded on another setup ({why}): re-recorded here, dropping "
                    f"{count(len(dropped), 'entry', 'entries')} not measured in this run: {', '.join(dropped)}"
                )
        entries.update(staged)
        removed = [name for name in removed_names if name in entries and name not in staged]
        for name in removed:
            del entries[name]
        text = render(self.machine, entries)
        if existing is not None and text == existing.text:
            return None
        if not entries:
            path.unlink(missing_ok=True)
            return f"{path}: removed (no tests left)"
        try:
            parse(path, text)  # never write what could not be read back
        except BaselineError as exc:
            return f"{path}: not written: the new text would not read back ({exc.problem})"
        write_atomic(path, text)
        parts = [f"{len(staged)} recorded"] if staged else []
        parts += [f"{len(removed)} removed"] if removed else []
        return f"{path}: written ({', '.join(parts)}){note}"
