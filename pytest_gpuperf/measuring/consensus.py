"""Decisions every rank of a torchrun job takes together.

Under ``torchrun -m pytest --gpuperf`` each rank measures the same test, and a step with
a collective in it (an all-reduce) must be called the same number of times on every rank,
or the ranks wait on each other for ever. So each decision the protocol takes from its
own timings (warmup chunk sizes, "steady yet?", calls per round, "more rounds?", "measure
again?") is agreed: a count is the largest any rank wants, a flag is set if any rank sets
it. A single process agrees with itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol


class Consensus(Protocol):
    rank: int
    world_size: int

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any."""
        ...

    def max(self, value: int) -> int:
        """The largest value any rank passed, on every rank."""
        ...

    def gather(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """Every rank's payload, in rank order, on every rank."""
        ...


class Alone:
    """One process: every decision is its own."""

    rank = 0
    world_size = 1

    def any(self, flag: bool) -> bool:
        return flag

    def max(self, value: int) -> int:
        return value

    def gather(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        return [payload]


ALONE = Alone()


def launched_rank(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(rank, world size) as torchrun (or any launcher that sets RANK and WORLD_SIZE) started
    this process; (0, 1) outside one."""
    env = environ if environ is not None else os.environ
    try:
        world = max(1, int(env.get("WORLD_SIZE", "1")))
        rank = int(env.get("RANK", "0"))
    except ValueError:
        return 0, 1
    return (rank, world) if 0 <= rank < world else (0, 1)
