"""Test ids as measurements and baselines use them: one place parses them (stdlib only)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pytest_gpuperf.judging.text import brief

OUTSIDE_ROOTDIR = "_outside_rootdir"


def module_key(path: Path, rootdir: Path) -> str:
    """A test file's baseline key: its path from the rootdir without ``.py``. A file outside
    the rootdir is keyed by its absolute path under ``_outside_rootdir/``, so two such files
    never share an entry (pytest's node ids for them can be short or empty)."""
    path = Path(path).resolve()
    try:
        relative = path.relative_to(Path(rootdir).resolve()).as_posix()
    except ValueError:
        relative = f"{OUTSIDE_ROOTDIR}/" + "/".join(part.replace(":", "") for part in path.parts[1:])
    return relative.removesuffix(".py")


def measurement_id(path: Path, rootdir: Path, nodeid: str, name: str) -> str:
    """The id a test's measurements and baselines go by: ``<module key>.py::<name>``, the
    node id for a test inside the rootdir (see ``module_key`` for one outside)."""
    return f"{module_key(path, rootdir)}.py::{nodeid.partition('::')[2] or name}"


def module_file(rootdir: Path, module: str) -> Path:
    """The test file a baseline key stands for (``module_key`` backwards)."""
    head, _, rest = module.partition("/")
    if head == OUTSIDE_ROOTDIR:
        return Path(Path(rootdir).resolve().anchor) / f"{rest}.py"
    return rootdir / f"{module}.py"


def split_test_id(test_id: str) -> tuple[str, str]:
    """``dir/test_mod.py::Class::test[p]#2`` -> (``dir/test_mod``, ``Class::test[p]#2``)."""
    module, _, test = test_id.partition("::")
    return module.removesuffix(".py"), test


def base_test(name: str) -> str:
    """The test an entry belongs to: a second measurement in one test is ``test#2``."""
    head, hash_, tail = name.rpartition("#")
    return head if hash_ and tail.isdigit() else name


_MACHINE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def checked_machine_key(value: object) -> str:
    """A machine key (a hook's answer) that is one safe folder name: never ".", "..", a path
    or an absolute one, which would send baselines, and their stale-entry cleanup, elsewhere."""
    if not isinstance(value, str) or not _MACHINE_KEY.fullmatch(value) or value in (".", ".."):
        raise ValueError(
            f"returned {brief(value)}: a machine key must be one folder name of letters, digits, '.', '_' and '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return value


def file_stem(test_id: str, limit: int = 100) -> str:
    """A file name for a test id: readable, at most ``limit`` characters plus a hash of the
    whole id, so ids that differ only in characters a file name cannot hold (``a/b``, ``a b``,
    ``a:b``) or past the limit never share a file."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_id).strip("_.")[:limit]
    digest = hashlib.blake2b(test_id.encode("utf-8", "surrogatepass"), digest_size=5).hexdigest()
    return f"{readable}-{digest}"
