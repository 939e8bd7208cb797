"""What the JSON report says about the run itself: when, from which commit, on what."""

from __future__ import annotations

import platform
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_gpuperf import __version__
from pytest_gpuperf.measuring.backend import EnvInfo
from pytest_gpuperf.measuring.hostclock import cpu_model

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def run_info(started: datetime, rootdir: Path, env: EnvInfo) -> dict[str, Any]:
    return {
        "plugin_version": __version__,
        "started_at": started.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(rootdir),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "backend": env.backend,
        "device": env.device,
        "driver": env.driver,
        "cuda": env.cuda,
        "torch": env.torch,
    }


def git_commit(start: Path) -> str | None:
    """The commit checked out in the git repository holding ``start``, read from its files (no
    git command needed); None outside one or where it cannot be read."""
    for folder in (start, *start.parents):
        dot_git = folder / ".git"
        if dot_git.exists():
            try:
                return _head(_git_dir(dot_git))
            except (OSError, UnicodeDecodeError, ValueError):
                return None
    return None


def _git_dir(dot_git: Path) -> Path:
    """``.git`` itself, or where a worktree's or submodule's ``.git`` file points."""
    if dot_git.is_dir():
        return dot_git
    text = dot_git.read_text(encoding="utf-8").strip()
    if not text.startswith("gitdir:"):
        raise ValueError("not a gitdir file")
    target = Path(text.removeprefix("gitdir:").strip())
    return target if target.is_absolute() else dot_git.parent / target


def _head(git_dir: Path) -> str | None:
    head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    if _SHA.fullmatch(head):
        return head  # detached
    ref = head.removeprefix("ref:").strip()
    # A worktree keeps its own HEAD; its branches live in the common folder.
    common = git_dir / "commondir"
    base = git_dir / common.read_text(encoding="utf-8").strip() if common.exists() else git_dir
    for folder in (git_dir, base):
        loose = folder / ref
        if loose.is_file():
            sha = loose.read_text(encoding="utf-8").strip()
            return sha if _SHA.fullmatch(sha) else None
    packed = base / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and _SHA.fullmatch(sha):
                return sha
    return None
