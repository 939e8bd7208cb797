"""What the measurement protocol reads of the run's settings: a small frozen value, so the
protocol is used (and tested) without pytest. The plugin builds it from its options
(``Settings.protocol()``); a benchmark script builds it directly."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProtocolConfig:
    warmup_calls: int  # warmup: at least this many calls
    warmup_ms: float  # ... and at least this long, then until steady
    rounds: int  # timed rounds
    round_ms: float  # minimum length of a timed round
    max_rounds: int  # rounds at most, while a budget or the baseline comparison is undecided
    profile_steps: int  # steps in the profiled pass; 0: none
    host_work_calls: int = 3  # calls counted for host work (Python lines and calls); 0: none
    host_clock_judges_latency: bool = False  # --gpuperf-device cpu: latency budgets on the host clock are judged
