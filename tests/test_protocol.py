"""The measurement protocol's pure parts: warmup, round sizing, budget judgement, intervals."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from pytest_gpuperf.judging.budget import FAIL, PASS, UNAVAILABLE, UNDECIDED, BudgetError, judge, parse_budget, settle
from pytest_gpuperf.judging.stats import Estimate, quantile, quantile_interval
from pytest_gpuperf.measuring.hostclock import HostClockBackend
from pytest_gpuperf.measuring.protocol import measure, warm_up
from tests.helpers import QUICK
from tests.replay import ReplayBackend


def test_warmup_reports_wall_time_per_call_not_the_reported_step_time() -> None:
    calls, wall_ms = warm_up(ReplayBackend([2.0]), lambda: None, QUICK)  # reports 2 ms, takes ~0
    assert calls >= QUICK.warmup_calls
    assert wall_ms < 0.5


def test_rounds_are_sized_by_wall_time(tmp_path: Path) -> None:
    slow = measure(
        HostClockBackend(),
        lambda: time.sleep(0.002),
        QUICK,
        test_id="t",
        budget={},
        items=None,
        trace_path=tmp_path / "a",
    )
    assert 3 <= slow.calls_per_round <= 5  # 10 ms rounds of a 2 ms step (at least MIN_CALLS_PER_ROUND)
    fast = measure(
        ReplayBackend([2.0]), lambda: None, QUICK, test_id="t", budget={}, items=None, trace_path=tmp_path / "b"
    )
    assert fast.calls_per_round > 100  # the replayed 2 ms are not wall time
    assert len(fast.round_samples_ms) == 3 and fast.trace_unavailable == "replay: no trace"


def test_warmup_runs_until_two_chunks_agree() -> None:
    drifting = iter([10.0] * 50 + [5.0] * 100_000)  # the first 50 calls are slow (compilation, clocks)
    backend = ReplayBackend(drifting)
    calls, _ = warm_up(backend, lambda: None, QUICK)
    assert calls > 50


def test_parse_budget_accepts_the_keys_and_refuses_the_rest() -> None:
    assert parse_budget((), {"p99_ms": 40, "gpu_active_pct_min": 80.5}) == {"p99_ms": 40.0, "gpu_active_pct_min": 80.5}
    for args, kwargs, message in [
        ((40,), {}, "keyword arguments only"),
        ((), {}, "states no budget"),
        ((), {"p95_ms": 1}, "unknown key 'p95_ms'"),
        ((), {"p99_ms": "fast"}, "expected a finite number"),
        ((), {"p99_ms": True}, "expected a finite number"),
        ((), {"p99_ms": -1}, "expected a finite number"),
        ((), {"p99_ms": float("inf")}, "expected a finite number"),
    ]:
        with pytest.raises(BudgetError, match=message):
            parse_budget(args, kwargs)


def test_judging_an_interval_against_a_budget() -> None:
    assert judge("p99_ms", 10, Estimate(9, 8, 9.5, True)).status == PASS
    assert judge("p99_ms", 10, Estimate(12, 11, 13, True)).status == FAIL
    straddle = judge("p99_ms", 10, Estimate(9.9, 9, 11, True))
    assert straddle.status == UNDECIDED
    settled = settle(straddle)
    assert (settled.status, settled.marginal) == (PASS, True)
    assert settle(judge("p99_ms", 10, Estimate(10.1, 9, 11, True))).status == FAIL
    # Higher is better: throughput and GPU-active %.
    assert judge("items_per_s_min", 100, Estimate(90, 85, 95, True)).status == FAIL
    assert judge("gpu_active_pct_min", 80, 79.0).status == FAIL
    assert judge("dispatch_ratio_max", 2, 1.5).status == PASS
    unavailable = judge("nccl_pct_max", 5, None, "no kernels")
    assert (unavailable.status, unavailable.reason) == (UNAVAILABLE, "no kernels")
    assert "unavailable (no kernels)" in unavailable.describe()


def test_quantile_interpolates_like_numpy() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.99) == pytest.approx(3.97)
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_order_statistic_interval_brackets_the_quantile_and_widens_when_samples_are_few() -> None:
    rng = random.Random(7)
    samples = [rng.expovariate(1.0) for _ in range(1000)]
    p50 = quantile_interval(samples, 0.5)
    assert p50.low < p50.value < p50.high and p50.exact_bounds
    few = quantile_interval(samples[:50], 0.99)  # 50 samples cannot bound a p99 from above at 95%
    assert not few.exact_bounds and few.high == max(samples[:50])
    large = quantile_interval([rng.expovariate(1.0) for _ in range(5000)], 0.99)  # normal approximation
    assert large.exact_bounds and large.low < large.value < large.high


def test_no_extra_rounds_are_spent_on_a_step_whose_latency_will_not_be_gated(tmp_path: Path) -> None:

    from pytest_gpuperf.judging.entry import Entry

    # A baseline whose rounds spread so wide that any comparison with it is inconclusive.
    wide = Entry.of(samples=30, p50_ms=1.0, p99_ms=1.3, p99_ci_ms=(1.2, 1.4), round_medians_ms=(0.7, 1.0, 1.3))

    def rounds(baseline: Entry) -> int:
        m = measure(ReplayBackend([1.0]), lambda: None, QUICK, test_id="t", budget={}, items=None,
                    trace_path=tmp_path / "t", baseline=baseline)  # fmt: skip
        return len(m.round_samples_ms)

    assert rounds(wide) == QUICK.max_rounds  # a GPU-paced step: more rounds to decide
    assert rounds(wide.updated(gpu_us_per_launch=3.0)) == QUICK.rounds  # host-paced: not gated
