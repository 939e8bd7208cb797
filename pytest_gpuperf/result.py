"""A measurement as the run judged it: what the session keeps per measured call."""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_gpuperf.judging.verdict import Verdict
from pytest_gpuperf.measuring.explain import Explanation
from pytest_gpuperf.measuring.protocol import Measurement


@dataclass(frozen=True)
class Result:
    """A measurement as this run judged it."""

    measurement: Measurement
    verdict: Verdict
    recorded: bool  # staged as a new baseline entry
    explanation: Explanation = field(default_factory=Explanation)  # measured again after it failed
