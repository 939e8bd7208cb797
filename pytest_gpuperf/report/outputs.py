"""Where a run writes: checked before anything is measured, written so that a failed write
loses nothing else (every other output is still written, and the file is whole or untouched)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pytest_gpuperf.judging.text import WRITE_FAILED

NOT_WRITABLE = "cannot write (no permission, or a read-only file system):"


def output_problem(path: Path, what: str) -> str | None:
    """Why ``path`` cannot take a file (None: it can), checked before the run measures anything:
    a folder there, a file where a folder must be, or no permission to write."""
    if path.is_dir():
        return f"{what} {path}: is a folder; give a file's path"
    if path.exists():
        return None if os.access(path, os.W_OK) else f"{what} {path}: {NOT_WRITABLE} {path}"
    cause = _folder_cause(path.parent)
    return f"{what} {path}: {cause}" if cause else None


def folder_problem(folder: Path, what: str) -> str | None:
    """Why files cannot be written into ``folder`` (made if missing); None: they can."""
    cause = _folder_cause(folder)
    return f"{what} {folder}: {cause}" if cause else None


def _folder_cause(folder: Path) -> str:
    """Why nothing can be written into ``folder`` or made there, from its nearest existing
    ancestor ("" : it can)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    return "" if os.access(existing, os.W_OK) else f"{NOT_WRITABLE} {existing}"


def written(what: str, path: Path, write: Callable[[Path], None]) -> str | None:
    """``write(path)``; a failure is one line naming the file and the cause (None: written)."""
    try:
        write(path)
    except OSError as exc:
        return f"{what} {path} {WRITE_FAILED}: {exc.strerror or exc}"
    return None
