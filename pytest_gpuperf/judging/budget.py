"""The ``gpu_budget`` marker: its keys, their checks, and how a value is judged.

A budget fails only when the measurement is confidently past it: for latency,
the whole confidence interval lies beyond the budget. An interval that straddles
the budget is undecided; the caller measures more rounds, and once it may not,
decides by the point value and marks the verdict marginal.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_gpuperf.errors import GpuperfError
from pytest_gpuperf.judging.registry import BY_BUDGET, Metric
from pytest_gpuperf.judging.stats import Estimate
from pytest_gpuperf.judging.text import brief, finite

# gpu_budget's keywords, each the metric it bounds (the registry's rows with a budget key).
KEYS: dict[str, Metric] = BY_BUDGET


PASS, FAIL, UNDECIDED, UNAVAILABLE = "pass", "fail", "undecided", "unavailable"


class BudgetError(GpuperfError, ValueError):
    """A malformed gpu_budget marker."""


def parse_budget(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, float]:
    if args:
        raise BudgetError(f"takes keyword arguments only (such as p99_ms=40), got positional {args!r}")
    if not kwargs:
        raise BudgetError(f"states no budget; keys: {', '.join(KEYS)}")
    budget: dict[str, float] = {}
    for key, value in kwargs.items():
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise BudgetError(f"unknown key {key!r}; {hint}keys: {', '.join(KEYS)}")
        budget[key] = budget_number(key, value)
    return budget


def budget_number(key: str, value: Any) -> float:
    """A marker's number as a float: finite, 0 or more (a 400-digit int overflows a float)."""
    number = finite(value)
    if number is None or number < 0:
        raise BudgetError(f"{key}={brief(value, 40)}: expected a finite number, 0 or more")
    return number


@dataclass(frozen=True)
class BudgetResult:
    key: str
    metric: str
    unit: str
    limit: float
    status: str  # PASS, FAIL or UNAVAILABLE (never UNDECIDED once final)
    value: float | None = None
    low: float | None = None  # confidence interval, where the metric has one
    high: float | None = None
    marginal: bool = False  # decided by the point value: the interval straddled the limit at the round cap
    reason: str = ""  # why the value is unavailable

    @property
    def higher_is_better(self) -> bool:
        return KEYS[self.key].higher_is_better

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.status == UNAVAILABLE or self.value is None:
            return f"{self.metric}: unavailable ({self.reason})"
        interval = f" [95% CI {self.low:.4g}, {self.high:.4g}]" if self.low is not None else ""
        relation = "<" if self.higher_is_better else ">"
        if self.status == PASS:
            relation = ">=" if self.higher_is_better else "<="
        side = "short" if self.higher_is_better else "over"
        by = f"{abs(self.value - self.limit) / self.limit * 100:.1f}%" if self.limit else f"{self.value:.4g}{unit}"
        tail = f" ({side} by {by})" if self.status == FAIL else ""
        mark = " (marginal: decided at the round cap)" if self.marginal else ""
        return f"{self.metric} = {self.value:.4g}{unit}{interval} {relation} budget {self.limit:.4g}{unit}{tail}{mark}"


def judge(key: str, limit: float, value: float | Estimate | None, reason: str = "") -> BudgetResult:
    """One budget against one value; an Estimate that straddles the limit is UNDECIDED."""
    spec = KEYS[key]
    if value is None:
        return BudgetResult(key, spec.shown, spec.unit, limit, UNAVAILABLE, reason=reason)
    if isinstance(value, Estimate):
        point, low, high = value.value, value.low, value.high
        if spec.higher_is_better:
            status = FAIL if high < limit else PASS if low >= limit else UNDECIDED
        else:
            status = FAIL if low > limit else PASS if high <= limit else UNDECIDED
        return BudgetResult(key, spec.shown, spec.unit, limit, status, point, low, high)
    worse = value < limit if spec.higher_is_better else value > limit
    return BudgetResult(key, spec.shown, spec.unit, limit, FAIL if worse else PASS, value)


def settle(result: BudgetResult) -> BudgetResult:
    """Decide an UNDECIDED result by its point value, marked marginal."""
    if result.status != UNDECIDED or result.value is None:
        return result
    worse = result.value < result.limit if result.higher_is_better else result.value > result.limit
    return BudgetResult(
        result.key,
        result.metric,
        result.unit,
        result.limit,
        FAIL if worse else PASS,
        result.value,
        result.low,
        result.high,
        marginal=True,
    )
