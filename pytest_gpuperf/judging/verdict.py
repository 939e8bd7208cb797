"""One verdict per measurement: its budgets, its comparison with the baseline, and the run's
baseline policy decide whether the test fails, and the one word the report shows for it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_gpuperf.judging.budget import FAIL, UNAVAILABLE, BudgetResult
from pytest_gpuperf.judging.compare import NEW, NOT_COMPARED, REGRESSED, UNREADABLE, Comparison


@dataclass(frozen=True)
class Policy:
    """The run's baseline policy."""

    update: bool = False  # --gpuperf-update-baselines: a regression is re-recorded, not failed
    strict: bool = False  # --gpuperf-strict-baselines: a test with no baseline to compare with fails


@dataclass(frozen=True)
class Verdict:
    label: str  # FAIL, pass, pass (marginal), pass (partly unavailable) or measured (no budget)
    over_budget: tuple[BudgetResult, ...]  # the budgets the measurement is confidently past
    problems: tuple[str, ...]  # why the baseline gate fails it

    @property
    def failing(self) -> bool:
        return self.label == "FAIL"


def verdict(budgets: Sequence[BudgetResult], comparison: Comparison | None, policy: Policy) -> Verdict:
    over = tuple(b for b in budgets if b.status == FAIL)
    problems = tuple(baseline_problems(comparison, policy))
    if over or problems:
        label = "FAIL"
    elif not budgets:
        label = "measured"
    elif any(b.marginal for b in budgets):
        label = "pass (marginal)"
    elif any(b.status == UNAVAILABLE for b in budgets):
        label = "pass (partly unavailable)"
    else:
        label = "pass"
    return Verdict(label, over, problems)


def baseline_problems(c: Comparison | None, policy: Policy) -> list[str]:
    """Why the baseline gate fails a measurement (budgets are judged apart)."""
    if c is None:
        return []
    if c.status == UNREADABLE:
        return [f"baseline unreadable (the file is left as it is): {c.reason}"]
    if c.status == REGRESSED and not policy.update:
        return ["regressed against its baseline"]
    if policy.strict and not policy.update and c.status in (NEW, NOT_COMPARED):
        return [f"no baseline to compare with (--gpuperf-strict-baselines): {c.reason}"]
    return []
