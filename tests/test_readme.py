"""The README's front door: CI runs its two commands exactly as they are written there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    section = ROOT.joinpath("README.md").read_text().split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S) for line in block.splitlines()]


def test_ci_runs_the_readme_commands_exactly_as_written() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    ci = [line.strip() for line in ROOT.joinpath(".ci", "run").read_text().splitlines()]
    for command in commands:
        assert command in ci, f"{command!r} is not a line of .ci/run"
