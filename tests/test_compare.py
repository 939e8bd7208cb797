"""Verdicts against a baseline: regressed, improved, same, inconclusive; clocks; counts."""

from __future__ import annotations

import math

import pytest

from pytest_gpuperf.judging.compare import (
    IMPROVED,
    INCONCLUSIVE,
    REGRESSED,
    SAME,
    SIDE_CONFIDENCE,
    compare,
    kernel_changes,
    outcome,
    rounds_to_decide,
)
from pytest_gpuperf.judging.entry import Entry
from pytest_gpuperf.judging.stats import quantile_interval

# Round medians of a steady step, as a CUDA-graph decode step shows them (0.05% apart).
STEADY = (1.1061, 1.1063, 1.1060, 1.1064, 1.1062, 1.1061, 1.1065, 1.1062, 1.1063, 1.1060)


def entry(medians: tuple[float, ...] = STEADY, clocks: tuple[float, ...] = (), **metrics: object) -> Entry:
    ordered = sorted(medians)
    p99 = ordered[-1] * 1.02
    values: dict[str, object] = {
        "samples": 100 * len(medians),
        "p50_ms": ordered[len(ordered) // 2],
        "p99_ms": p99,
        "p99_ci_ms": (p99 * 0.99, p99 * 1.01),
        "round_medians_ms": medians,
        "round_clock_mhz": clocks,
    }
    return Entry.of(**{**values, **metrics})


def scaled(medians: tuple[float, ...], factor: float) -> tuple[float, ...]:
    return tuple(m * factor for m in medians)


def test_the_same_step_again_is_same() -> None:
    result = compare(entry(), entry(STEADY[::-1]), 5.0)
    assert result.status == SAME
    latency = result.latency
    assert latency is not None and latency.ratio == 1.0
    assert latency.low < 1.0 < latency.high


def test_a_two_percent_slower_steady_step_regresses_under_a_one_percent_tolerance() -> None:
    result = compare(entry(), entry(scaled(STEADY, 1.02)), 1.0)
    assert result.status == REGRESSED
    latency = result.latency
    assert latency is not None and 1.01 < latency.low <= 1.02 <= latency.high < 1.03
    # ... and is within the default 5% tolerance: same.
    assert compare(entry(), entry(scaled(STEADY, 1.02)), 5.0).status == SAME


def test_a_faster_step_is_improved() -> None:
    assert compare(entry(), entry(scaled(STEADY, 0.8)), 5.0).status == IMPROVED


def test_noisy_rounds_are_inconclusive_and_say_how_many_rounds_would_decide() -> None:
    # An eager, host-bound step: rounds 12% apart now, against a quieter baseline.
    noisy = (10.0, 11.2, 9.6, 10.8, 10.1, 11.5, 9.9, 10.4, 11.0, 10.2)
    quiet = scaled(STEADY, 10.3 / 1.1062)
    result = compare(entry(quiet, p99_ci_ms=(11.0, 14.0)), entry(scaled(noisy, 1.08), p99_ci_ms=(11.0, 15.0)), 5.0)
    assert result.status == INCONCLUSIVE
    latency = result.latency
    assert latency is not None and latency.low < 1.05 < latency.high
    assert "rounds would decide it" in latency.note
    # A baseline as noisy as the change: more rounds now cannot help.
    result = compare(entry(noisy, p99_ci_ms=(11.0, 14.0)), entry(scaled(noisy, 1.08), p99_ci_ms=(11.0, 15.0)), 5.0)
    assert result.status == INCONCLUSIVE
    latency = result.latency
    assert latency is not None and "re-record the baseline with more rounds" in latency.note


def test_rounds_to_decide_follows_the_square_root_law() -> None:
    # Baseline interval +-1% (log), current +-20% at 10 rounds, point 1.20 with 5% tolerance:
    # the distance to the boundary is log(1.2/1.05); the current half-width must fall to that less 1%.
    old, new = (math.exp(-0.01), math.exp(0.01)), (1.2 * math.exp(-0.2), 1.2 * math.exp(0.2))
    advice = rounds_to_decide(1.2, old, new, 10, 0.05)
    boundary = math.log(1.2 / 1.05)
    expected = math.ceil(10 * (0.2 / (boundary - 0.01)) ** 2)
    assert expected > 20 and f"about {expected} rounds" in advice
    # A baseline wider than the distance cannot be overcome by measuring more now.
    wide = (math.exp(-0.2), math.exp(0.2))
    assert "re-record the baseline with more rounds" in rounds_to_decide(1.2, wide, new, 10, 0.05)


def test_rounds_to_decide_never_advises_fewer_rounds_than_were_measured() -> None:
    # +-4% at 30 rounds: the square-root law says 6 rounds would have done; they did not.
    old, new = (math.exp(-0.01), math.exp(0.01)), (1.2 * math.exp(-0.04), 1.2 * math.exp(0.04))
    advice = rounds_to_decide(1.2, old, new, 30, 0.05)
    assert "about 60 rounds would decide it (--gpuperf-rounds 60; 30 were measured)" in advice


def test_outcome_boundaries_in_both_directions() -> None:
    assert outcome(1.06, 1.08, 0.05, higher_is_better=False) == REGRESSED
    assert outcome(1.04, 1.08, 0.05, higher_is_better=False) == INCONCLUSIVE
    assert outcome(0.97, 1.04, 0.05, higher_is_better=False) == SAME
    assert outcome(0.90, 0.94, 0.05, higher_is_better=False) == IMPROVED
    # Throughput: higher is better, so a drop is the regression.
    assert outcome(0.90, 0.94, 0.05, higher_is_better=True) == REGRESSED
    assert outcome(1.06, 1.08, 0.05, higher_is_better=True) == IMPROVED


def test_the_ratio_interval_is_built_from_each_sides_order_statistic_interval() -> None:
    current = scaled(STEADY, 1.1)
    result = compare(entry(), entry(current), 5.0)
    old = quantile_interval(STEADY, 0.5, SIDE_CONFIDENCE)
    new = quantile_interval(current, 0.5, SIDE_CONFIDENCE)
    latency = result.latency
    assert latency is not None
    assert math.isclose(latency.low, new.low / old.high) and math.isclose(latency.high, new.high / old.low)


# A GEMM whose time follows the SM clock: the card heats and the clock falls from round to round.
CLOCKS_COOL = (1980.0,) * 10
CLOCKS_HOT = (1980.0, 1950.0, 1920.0, 1890.0, 1860.0, 1830.0, 1800.0, 1780.0, 1760.0, 1750.0)
GEMM_CYCLES = 0.1780 * 1980.0  # ms x MHz: constant for work that scales with the clock


def test_a_clock_drop_is_never_taken_for_a_regression() -> None:
    baseline = entry(tuple(GEMM_CYCLES / c for c in CLOCKS_COOL), CLOCKS_COOL)
    hot = entry(tuple(GEMM_CYCLES / c for c in CLOCKS_HOT), CLOCKS_HOT)
    raw = compare(baseline.updated(round_clock_mhz=()), hot.updated(round_clock_mhz=()), 5.0)
    assert raw.status != SAME  # without the clocks, the warm card reads 6-9% slower
    latency = compare(baseline, hot, 5.0).latency
    assert latency is not None and latency.outcome == INCONCLUSIVE
    assert latency.note.startswith("SM clock 1980 MHz in the baseline, 1845 MHz now: +7.3% as timed, +0.0% rescaled")
    assert latency.note.endswith(
        "the clock, not the rounds, leaves this open: compare on a card at the baseline's clock "
        "(or lock the clocks: nvidia-smi --lock-gpu-clocks)"
    )


def test_a_slowdown_larger_than_the_clock_explains_is_still_caught() -> None:
    baseline = entry(tuple(GEMM_CYCLES / c for c in CLOCKS_COOL), CLOCKS_COOL)
    slower = entry(tuple(1.05 * GEMM_CYCLES / c for c in CLOCKS_HOT), CLOCKS_HOT)
    assert compare(baseline, slower, 2.0).status == REGRESSED


def test_a_clock_that_moves_within_the_tolerance_changes_no_verdict() -> None:
    # A memory-bound step: the SM clock moves 1.5%, the time does not.
    cooler = (1980.0, 1965.0) * 5
    assert compare(entry(STEADY, CLOCKS_COOL), entry(STEADY, cooler), 5.0).status == SAME
    assert compare(entry(STEADY, CLOCKS_COOL), entry(scaled(STEADY, 1.1), cooler), 5.0).status == REGRESSED


# Recorded on the H100 (benchmarks/results/gating-h100-2.json): the 4096 bf16 GEMM's baseline
# process ran at 1980 MHz; an unchanged A/A process later ran power-throttled and 8-13% slower,
# following the clock only in part. As timed: a false regression; fully rescaled: an improvement.
H100_GEMM_BASELINE = (0.1723, 0.1725, 0.1725, 0.1724, 0.1724, 0.1731, 0.1733, 0.1733, 0.1727, 0.1729)
H100_GEMM_THROTTLED = (0.1861, 0.1898, 0.1894, 0.2034, 0.1908, 0.1821, 0.1936, 0.1925, 0.1918, 0.1898)
H100_THROTTLED_MHZ = (1515.0, 1485.0, 1485.0, 1545.0, 1545.0, 1620.0, 1620.0, 1545.0, 1545.0, 1500.0)


def test_a_throttled_card_is_inconclusive_neither_regressed_nor_improved() -> None:
    baseline = entry(H100_GEMM_BASELINE, CLOCKS_COOL)
    throttled = entry(H100_GEMM_THROTTLED, H100_THROTTLED_MHZ)
    timed_only = compare(baseline.updated(round_clock_mhz=()), throttled.updated(round_clock_mhz=()), 2.0)
    assert timed_only.status == REGRESSED
    latency = compare(baseline, throttled, 2.0).latency
    assert latency is not None and latency.outcome == INCONCLUSIVE
    assert latency.note.startswith(
        "SM clock 1980 MHz in the baseline, 1545 MHz now: +10.3% as timed, -13.7% rescaled to the clock;"
    )
    # A change larger than anything the clock explains is still caught on the throttled card.
    slower = entry(tuple(1.3 * t for t in H100_GEMM_THROTTLED), H100_THROTTLED_MHZ)
    assert compare(baseline, slower, 2.0).status == REGRESSED


def test_kernel_counts_are_compared_exactly_and_name_the_kernels() -> None:
    before = entry(kernels_per_step=3.0, launches_per_step=3.0, kernels={"gemm": 1.0, "add": 2.0})
    after = entry(kernels_per_step=4.0, launches_per_step=4.0, kernels={"gemm": 1.0, "add": 2.0, "mul": 1.0})
    result = compare(before, after, 5.0)
    assert result.status == REGRESSED
    assert result.kernels_added == ("mul",) and result.kernels_removed == ()
    outcomes = {c.metric: c.outcome for c in result.changes}
    assert outcomes["kernels_per_step"] == REGRESSED and outcomes["p50_ms"] == SAME
    assert compare(after, before, 5.0).kernels_removed == ("mul",)
    assert compare(after, before, 5.0).status == IMPROVED


def test_gpu_active_share_from_one_profiled_pass_is_reported_never_gated() -> None:
    # An unchanged ~60 us fp32 matmul between fresh H100 processes: 78.3% -> 44.4% active.
    result = compare(entry(gpu_active_pct=78.3), entry(gpu_active_pct=44.4), 5.0)
    assert result.status == SAME
    active = next(c for c in result.changes if c.metric == "gpu_active_pct")
    assert active.outcome == REGRESSED and not active.gated and "one profiled pass" in active.note


def test_the_dispatch_ratio_is_reported_but_never_decides() -> None:
    # A 512 MiB copy's dispatch ratio moved 0.047 -> 0.155 between two fresh H100 processes.
    result = compare(entry(dispatch_ratio=0.047), entry(dispatch_ratio=0.155), 5.0)
    assert result.status == SAME
    dispatch = next(c for c in result.changes if c.metric == "dispatch_ratio")
    assert dispatch.outcome == REGRESSED and not dispatch.gated and "not gated" in dispatch.note


def test_the_steps_own_memory_is_gated_and_the_process_peak_reported() -> None:
    # A module-scoped fixture grew by 100 MB: the process peak moves, the step's own does not.
    before = entry(peak_mem_mb=400.0, step_mem_mb=120.0, items_per_s=900.0)
    fixture_grew = compare(before, entry(peak_mem_mb=500.0, step_mem_mb=120.0, items_per_s=900.0), 5.0)
    assert fixture_grew.status == SAME
    peak = next(c for c in fixture_grew.changes if c.metric == "peak_mem_mb")
    assert peak.outcome == REGRESSED and not peak.gated
    step_grew = compare(before, entry(peak_mem_mb=520.0, step_mem_mb=240.0, items_per_s=900.0), 5.0)
    assert step_grew.status == REGRESSED
    assert {c.metric: c.outcome for c in step_grew.changes if c.gated}["step_mem_mb"] == REGRESSED
    slower = compare(before, entry(scaled(STEADY, 1.2), items_per_s=750.0), 5.0)
    assert {c.metric: c.outcome for c in slower.changes}["items_per_s"] == REGRESSED


def test_a_small_steps_own_memory_is_not_gated() -> None:
    result = compare(entry(step_mem_mb=2.0), entry(step_mem_mb=4.0), 5.0)
    assert result.status == SAME


def test_p99_is_reported_but_never_decides_the_verdict() -> None:
    tail = compare(entry(), entry(p99_ci_ms=(2.0, 2.2), p99_ms=2.1), 5.0)
    p99 = next(c for c in tail.changes if c.metric == "p99_ms")
    assert p99.outcome == REGRESSED and not p99.gated and "not gated" in p99.note
    assert tail.status == SAME


def test_a_host_paced_steps_latency_is_reported_not_gated_and_its_counts_decide() -> None:
    slower = compare(entry(items_per_s=100.0), entry(scaled(STEADY, 1.4), items_per_s=71.4, gpu_us_per_launch=3.0), 5.0)
    assert slower.status == SAME  # nor through items per second, the latency upside down
    assert not next(c for c in slower.changes if c.metric == "items_per_s").gated
    latency = slower.latency
    assert latency is not None and not latency.gated and latency.outcome == REGRESSED
    assert "host-paced step (each launch gives the GPU 3 us of work, under 100 us: a slower host can pace it)" in (
        latency.note
    )
    assert slower.summary() == "+40.0% host-paced, same"
    # Its kernel count still gates exactly.
    more = compare(entry(kernels_per_step=10.0), entry(kernels_per_step=11.0, gpu_us_per_launch=3.0), 5.0)
    assert more.status == REGRESSED


def test_host_waiting_in_either_run_exempts_latency_so_the_order_of_runs_cannot_matter() -> None:
    # ResNet-50 eager on an H200: the GPU waited 9% of the step in the first process, 57% later.
    for waits in ((9.0, 57.0), (57.0, 9.0)):
        result = compare(entry(host_wait_pct=waits[0]), entry(scaled(STEADY, 1.85), host_wait_pct=waits[1]), 5.0)
        assert result.status == SAME and result.latency is not None and not result.latency.gated
    # Improved is withheld as well: a baseline whose host ran slower (ResNet-50 eager, -45%).
    faster = compare(entry(host_wait_pct=50.0), entry(scaled(STEADY, 0.55), host_wait_pct=9.0), 5.0)
    assert faster.status == SAME
    # A step the GPU paces in both runs is gated as before.
    gpu_paced = compare(entry(host_wait_pct=3.0), entry(scaled(STEADY, 1.15), host_wait_pct=5.0), 5.0)
    assert gpu_paced.status == REGRESSED


def test_the_kernels_whose_time_moved_most_are_named_with_their_share_of_the_step() -> None:
    old = {"gemm": 200.0, "softmax": 50.0, "copy": 10.0, "same": 30.0}
    new = {"gemm": 340.0, "softmax": 40.0, "copy": 10.5, "same": 30.0, "extra": 5.0}
    moved = kernel_changes(old, new, step_ms=0.85)
    assert [k.name for k in moved] == ["gemm", "softmax", "extra"]  # by size of the move; under 1 us left out
    assert moved[0].describe() == "gemm: 200.0 -> 340.0 us per step (+70%), 40% of the step"
    assert moved[2].describe() == "extra: 0.0 -> 5.0 us per step (new), 1% of the step"
    assert kernel_changes({}, new, 1.0) == () and kernel_changes(old, new, 0.0) == ()
    result = compare(entry(kernel_us=old), entry(kernel_us=new), 5.0)
    assert result.kernel_changes[0].name == "gemm"
    # Entries without gpu_ms_per_step (an earlier release's): the GPU time from the kernels' on both sides.
    (gpu,) = [c for c in result.changes if c.metric == "gpu_ms_per_step"]
    assert gpu.baseline == 0.29 and gpu.current == pytest.approx(0.4255) and gpu.outcome == REGRESSED
    assert "from the kernels' time per step on both sides" in gpu.note and result.status == REGRESSED


def test_items_per_second_holds_where_the_items_per_call_grew_with_the_latency() -> None:
    # A copy 10% larger with items= 10% larger: the latency regressed, the rate held.
    result = compare(entry(items_per_s=1000.0), entry(scaled(STEADY, 1.1), items_per_s=1000.0), 5.0)
    items = next(c for c in result.changes if c.metric == "items_per_s")
    assert items.outcome == SAME and "items per call +10.0%" in items.note
    assert result.latency is not None and result.latency.outcome == REGRESSED and result.status == REGRESSED
    # Items unchanged: the rate follows the latency's verdict, as before.
    slower = compare(entry(items_per_s=1000.0), entry(scaled(STEADY, 1.1), items_per_s=909.1), 5.0)
    assert next(c for c in slower.changes if c.metric == "items_per_s").outcome == REGRESSED


def test_two_instantiations_of_one_template_are_shown_apart() -> None:
    from pytest_gpuperf.report.terminal import shown_kernel_names

    a = "void at::native::elementwise_kernel<128, 2, at::native::AddFunctor<float>>(int, float*)"
    b = "void at::native::elementwise_kernel<128, 4, at::native::MulFunctor<float>>(int, float*)"
    shown = shown_kernel_names([a, b, "void gemm<1>(int)"])
    assert shown[a] == a and shown[b] == b and shown["void gemm<1>(int)"] == "gemm<...>"


def test_a_new_synchronization_regresses_exactly_naming_its_operator() -> None:
    before = entry(host_syncs_per_step=0.0, sync_ops={}, cpu_ops_per_step=120.0)
    after = entry(host_syncs_per_step=1.0, sync_ops={"aten::item": 1.0}, cpu_ops_per_step=121.0)
    result = compare(before, after, 5.0)
    syncs = next(c for c in result.changes if c.metric == "host_syncs_per_step")
    assert syncs.outcome == REGRESSED and "synchronizing in aten::item 0 -> 1" in syncs.note
    ops = next(c for c in result.changes if c.metric == "cpu_ops_per_step")
    assert ops.outcome == REGRESSED and result.status == REGRESSED
    assert compare(before, before, 5.0).status == SAME


def test_unchanged_items_per_call_read_as_unchanged_when_the_two_p50s_differ() -> None:
    # The entry's p50 is the samples' (1.02 ms); the comparison's, the median of round medians
    # (1.037 ms): items per call are read from each entry's own rate and p50, so they hold.
    base = entry((1.0, 1.0, 1.0), items_per_s=1000.0)
    now = entry((1.03, 1.037, 1.04), items_per_s=1000.0 / 1.02).updated(p50_ms=1.02)
    items = next(c for c in compare(base, now, 5.0).changes if c.metric == "items_per_s")
    assert items.note.startswith("follows the p50 latency"), items.note


def test_a_measurement_compared_with_itself_is_the_same() -> None:
    noisy = entry((0.7, 1.0, 1.3, 0.9, 1.2))
    result = compare(noisy, noisy, 5.0)
    latency = result.latency
    assert latency is not None and (latency.low, latency.ratio, latency.high) == (1.0, 1.0, 1.0)
    assert result.status == SAME
