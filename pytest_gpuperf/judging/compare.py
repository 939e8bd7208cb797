"""A measurement against its baseline: a verdict per metric, and one per test.

Latency is compared on the per-round medians, so the noise a step shows from round
to round sets how sure a verdict is: each side's median gets an order-statistic
interval, and the ratio current/baseline the interval those two bound. A metric is

- regressed: the whole ratio interval is worse than the tolerance allows;
- improved: the whole interval is better by more than the tolerance;
- same: the whole interval lies within the tolerance;
- inconclusive: the interval straddles a tolerance boundary (too noisy to tell).

Where the SM clock moved between the runs, the latency interval spans the timed and
the clock-rescaled comparison. Metrics from the single profiled pass have no interval:
GPU-active % is compared as a point against a wider tolerance, the dispatch ratio and
p99 are reported but never decide. Kernel and launch counts per step are compared exactly.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from pytest_gpuperf.judging.entry import COMPILE_EVENT_KINDS, Entry, Rounds
from pytest_gpuperf.judging.registry import (
    BY_NAME,
    EXACT,
    GATES,
    GENERATION,
    HOST,
    LATENCY,
    METRICS,
    NUMBER,
    POINT,
    REPORTED,
    Metric,
)
from pytest_gpuperf.judging.stats import quantile_interval

REGRESSED, IMPROVED, SAME, INCONCLUSIVE = "regressed", "improved", "same", "inconclusive"
NEW, NOT_COMPARED, UNREADABLE = "new", "not compared", "unreadable baseline"

# Each side's interval at sqrt(0.95): the ratio interval then covers with at least 95%.
SIDE_CONFIDENCE = math.sqrt(0.95)
# Latency is gated only where the GPU, not the host, paces the step in both runs: where the GPU
# waits for the host this share of the step or more in either, the host's speed moves the
# latency between processes (ResNet-50 eager read -45% against a baseline whose host ran slower).
HOST_WAIT_GATE_PCT = 25.0
# ... and where each launch carries this much GPU work or more: below it a slower host can pace
# the step (an unchanged 58 us matmul, one launch, read 1.0-1.5x between fresh H200 processes
# while the host's speed moved 2x; steps of 500 us or more per launch held within 0.8%).
GATE_LAUNCH_US = 100.0
HOST_BOUND_NOTE = (
    "host-paced step ({why}): its latency moves with the host's speed between processes, so it is "
    "reported, not gated; its GPU time, host work, kernels, launches and memory per step decide, and a "
    "p50_ms/p99_ms budget bounds it"
)
# The report's table names the gates that judged a test in short.
GATE_SHORT = {"latency": "latency", "gpu time": "gpu", "host work": "host", "counts": "counts", "memory": "mem"}
GPU_TIME_HIDDEN = "the step's latency hides it: the host paces the step ({why})"
# Figures with one value a run, and counts compared exactly, as the registry lists them.
FIGURES = tuple(
    m
    for m in METRICS
    if m.compared in (POINT, REPORTED) and m.shape == NUMBER and m.source not in (LATENCY, GENERATION)
)
COUNTS = tuple(m for m in METRICS if m.compared == EXACT)
GATED = tuple(m for m in METRICS if m.compared in (POINT, EXACT))
CLOCK_STEADY = 1.01  # SM clocks within 1% of each other: no clock correction
MAX_ROUNDS_ADVICE = 1000


@dataclass(frozen=True)
class MetricChange:
    metric: str
    baseline: float
    current: float
    ratio: float  # current / baseline
    low: float  # the ratio's interval; equal to ratio where the metric has none
    high: float
    outcome: str
    note: str = ""
    gated: bool = True  # False: reported, but never decides the test's verdict

    @property
    def change_pct(self) -> float:
        return (self.ratio - 1.0) * 100.0

    def brief(self, interval: bool = False) -> str:
        """``metric old -> new (change)``; with ``interval``, the ratio's 95% CI as well."""
        if not math.isfinite(self.ratio):  # from zero: no percentage to give
            change = "from none"
        else:
            change = f"{self.change_pct:+.1f}%"
            if interval and self.low != self.high:
                change += f", 95% CI {(self.low - 1) * 100:+.1f}% to {(self.high - 1) * 100:+.1f}%"
        return f"{self.metric} {self.baseline:.4g} -> {self.current:.4g} ({change})"

    def describe(self) -> str:
        text = f"{self.brief(interval=True)}: {self.outcome}"
        return text + (f"; {self.note}" if self.note else "")


@dataclass(frozen=True)
class KernelChange:
    """One kernel's GPU time per step, from each run's profiled pass: reported, never gated
    (one pass has no interval), to say which kernel a latency change came from."""

    name: str
    baseline_us: float
    current_us: float
    step_share_pct: float  # of the current step's p50, timed without the profiler

    def describe(self, name: str | None = None) -> str:
        """``name``: the kernel as shown (a short form of a long template name)."""
        change = f"{(self.current_us / self.baseline_us - 1) * 100:+.0f}%" if self.baseline_us else "new"
        return (
            f"{name or self.name}: {self.baseline_us:.1f} -> {self.current_us:.1f} us per step ({change}), "
            f"{self.step_share_pct:.0f}% of the step"
        )


@dataclass(frozen=True)
class Comparison:
    status: str  # REGRESSED, IMPROVED, SAME, INCONCLUSIVE, NEW, NOT_COMPARED or UNREADABLE
    tolerance_pct: float
    changes: tuple[MetricChange, ...] = ()
    reason: str = ""  # why a test is new or not compared
    kernels_added: tuple[str, ...] = ()
    kernels_removed: tuple[str, ...] = ()
    first_attempt: str = ""  # a suspected regression measured again: what the first measurement read
    baseline_file: str = ""
    kernel_changes: tuple[KernelChange, ...] = ()  # the kernels whose time per step moved most
    baseline_rounds_ms: tuple[float, ...] = ()  # the baseline's per-round medians (the reports plot them)
    lacking: tuple[str, ...] = ()  # gated metrics measured now that the baseline lacks (an earlier release's)

    @property
    def latency(self) -> MetricChange | None:
        return next((c for c in self.changes if c.metric == "p50_ms"), None)

    def summary(self) -> str:
        """A short cell for the report's table."""
        if self.status in (NEW, NOT_COMPARED, UNREADABLE):
            return self.status
        latency = self.latency
        if latency is None:
            return self.status
        paced = "" if latency.gated else " host-paced,"
        decided = ", ".join(GATE_SHORT[gate] for gate in self.gates())
        return f"{latency.change_pct:+.1f}%{paced} {self.status}" + (f" ({decided})" if decided else "")

    def gates(self) -> dict[str, str]:
        """Each gate that judged this test (registry.GATES, in that order), with its outcome: the
        worst of its gated metrics. A gate none of whose metrics was gated is left out."""
        found: dict[str, list[str]] = {}
        for change in self.changes:
            metric = BY_NAME.get(change.metric)
            gate = metric.gate if metric is not None else ""
            if change.gated and gate:
                found.setdefault(gate, []).append(change.outcome)
        return {gate: _overall_of(found[gate]) for gate in GATES if gate in found}


def host_wait(baseline: Entry, current: Entry) -> float | None:
    """The larger share of the step the GPU waited for the host, of the two runs (None: neither
    was profiled). Both count: a class from one run flips near a threshold, the larger does not."""
    waits = [w for w in (baseline.figure("host_wait_pct"), current.figure("host_wait_pct")) if w is not None]
    return max(waits) if waits else None


def host_paced(entry: Entry) -> str:
    """Why a slower host can pace this step (empty: the GPU paces it on any host), from GPU
    work per launch, which a slower or faster host does not move."""
    per_launch = entry.figure("gpu_us_per_launch")
    if per_launch is None or per_launch >= GATE_LAUNCH_US:
        return ""
    return (
        f"each launch gives the GPU {per_launch:.0f} us of work, under {GATE_LAUNCH_US:g} us: a slower host can pace it"
    )


def compare(baseline: Entry, current: Entry, tolerance_pct: float) -> Comparison:
    """``tolerance_pct``: how much worse, in percent, a metric may get before it regresses.

    A host-paced step: each launch gives the GPU under 100 us of work (host_paced, from this
    run's entry, else the baseline's), or the GPU waited for the host >= 25% of the step in
    the baseline or now. Its latency is the host's, which moves
    between processes far more than within one (the zoo on an H200: HF and timm forwards 1.8-2x
    slower in later fresh processes than in the first), so the latency change is reported, not
    gated: never failed, never improved. Its kernels, launches and memory per step, compared
    exactly, decide; a p50_ms/p99_ms budget bounds its latency."""
    tolerance = tolerance_pct / 100.0  # the one conversion: ratios below are compared with 1 + tolerance
    latency = latency_change(baseline.rounds, current.rounds, tolerance_pct)
    wait = host_wait(baseline, current)
    paced = host_paced(current) or host_paced(baseline)
    if paced or (wait is not None and wait >= HOST_WAIT_GATE_PCT):
        why = paced or f"the GPU waited for the host {wait:.0f}% of the step"
        latency = replace(latency, gated=False, note=HOST_BOUND_NOTE.format(why=why))
    else:
        why = ""
    changes = [latency, *_generation_changes(baseline, current, latency, tolerance_pct)]
    p99 = _interval_change("p99_ms", baseline.p99_ms, current.p99_ms, baseline.p99_ci_ms, current.p99_ci_ms, tolerance)
    changes.append(replace(p99, note=BY_NAME["p99_ms"].note))
    old_items, new_items = baseline.figure("items_per_s"), current.figure("items_per_s")
    if old_items and new_items:
        per_call = (new_items * current.p50_ms) / (old_items * baseline.p50_ms)  # items per call, now / then
        changes.append(_items_change(old_items, new_items, per_call, changes[0], tolerance))
    had, has = baseline.values(), current.values()
    lacking = tuple(m.name for m in GATED if m.name in has and m.name not in had)
    baseline, current, derived = with_kernel_time(baseline, current)
    for metric in FIGURES:
        change = _figure_change(metric, baseline, current, tolerance)
        if change is None:
            continue
        if metric.name == GPU_TIME and derived:
            change = replace(change, note=f"{change.note}; {DERIVED_NOTE}")
        if change.gated and change.outcome == REGRESSED:
            if metric.gate == "gpu time" and why:
                change = replace(change, note=f"{change.note}; {GPU_TIME_HIDDEN.format(why=why)}")
            if named := _what_grew(metric, baseline, current):
                change = replace(change, note=f"{change.note}; {named}")
        changes.append(change)
    for metric in COUNTS:
        old, new = baseline.figure(metric.name), current.figure(metric.name)
        if old is not None and new is not None:
            changes.append(_count_change(metric.name, old, new))
            if new > old and (named := _what_grew(metric, baseline, current)):
                changes[-1] = replace(changes[-1], note=f"compared exactly; {named}")
    old_kernels, new_kernels = baseline.per_name("kernels"), current.per_name("kernels")
    added = tuple(sorted(set(new_kernels) - set(old_kernels)))
    removed = tuple(sorted(set(old_kernels) - set(new_kernels)))
    same_names = bool(old_kernels and new_kernels) and not (added or removed)
    if same_names and any(not _same_count(n, new_kernels[k]) for k, n in old_kernels.items()):
        changes.append(_kernel_mix_change(old_kernels, new_kernels))
    moved = kernel_changes(baseline.per_name("kernel_us"), current.per_name("kernel_us"), current.p50_ms)
    return Comparison(
        _overall(changes),
        tolerance_pct,
        tuple(changes),
        "",
        added,
        removed,
        kernel_changes=moved,
        baseline_rounds_ms=baseline.round_medians_ms,
        lacking=tuple(name for name in lacking if name != GPU_TIME or not derived),
    )


GPU_TIME = "gpu_ms_per_step"
DERIVED_NOTE = "from the kernels' time per step on both sides (one was written before gpu_ms_per_step was kept)"


def with_kernel_time(baseline: Entry, current: Entry) -> tuple[Entry, Entry, bool]:
    """Where one side lacks the GPU time per step (a report or baseline of an earlier release) and
    both kept each kernel's time per step, both sides' GPU time from those (kernels only, no copies)."""
    if baseline.figure(GPU_TIME) is not None and current.figure(GPU_TIME) is not None:
        return baseline, current, False
    old, new = baseline.per_name("kernel_us"), current.per_name("kernel_us")
    if not old or not new:
        return baseline, current, False
    return (
        baseline.updated(**{GPU_TIME: sum(old.values()) / 1000.0}),
        current.updated(**{GPU_TIME: sum(new.values()) / 1000.0}),
        True,
    )


GENERATION_LATENCIES = ("ttft_ms", "tpot_ms")


def _generation_changes(
    baseline: Entry, current: Entry, latency: MetricChange, tolerance_pct: float
) -> list[MetricChange]:
    """A generation's prefill (TTFT) and decode (TPOT) apart, so a slower decode cannot hide
    behind a faster prefill in the call's latency; gated where the call's latency is."""
    changes = []
    for metric in GENERATION_LATENCIES:
        old, new = baseline.per_call(metric), current.per_call(metric)
        if old.medians_ms and new.medians_ms:
            change = latency_change(old, new, tolerance_pct, metric)
            changes.append(change if latency.gated else replace(change, gated=False, note=latency.note))
    old_rate, new_rate = baseline.figure("tokens_per_s"), current.figure("tokens_per_s")
    if old_rate and new_rate:
        ratio = new_rate / old_rate
        verdict = outcome(ratio, ratio, tolerance_pct / 100.0, True)
        note = BY_NAME["tokens_per_s"].note
        changes.append(
            MetricChange("tokens_per_s", old_rate, new_rate, ratio, ratio, ratio, verdict, note, gated=False)
        )
    return changes


KERNELS_SHOWN = 5
KERNEL_MOVE_US = 1.0  # smaller moves per step are noise of one profiled pass


def kernel_changes(old: Mapping[str, float], new: Mapping[str, float], step_ms: float) -> tuple[KernelChange, ...]:
    """The kernels whose GPU time per step moved most (appeared and disappeared ones too)."""
    step_us = step_ms * 1000.0
    if not old or not new or step_us <= 0:
        return ()
    moves = [
        KernelChange(name, old.get(name, 0.0), new.get(name, 0.0), 100.0 * new.get(name, 0.0) / step_us)
        for name in set(old) | set(new)
        if abs(new.get(name, 0.0) - old.get(name, 0.0)) >= KERNEL_MOVE_US
    ]
    moves.sort(key=lambda k: (-abs(k.current_us - k.baseline_us), k.name))
    return tuple(moves[:KERNELS_SHOWN])


def _items_change(old: float, new: float, per_call: float, p50: MetricChange, tolerance: float) -> MetricChange:
    """Items per second are the latency read upside down, gated exactly where it is, unless
    the items per call changed too (a 10% larger copy with items= 10% larger holds its rate).
    ``per_call``: items per call now against then, from each entry's own rate and p50 (the
    comparison's p50 is the median of round medians, which differs from the samples' p50)."""
    ratio = new / old
    note = "follows the p50 latency" + ("" if p50.gated else "; " + p50.note)
    if abs(per_call - 1.0) < ITEMS_CHANGED:
        return MetricChange("items_per_s", old, new, ratio, 1.0 / p50.high, 1.0 / p50.low, p50.outcome, note, p50.gated)
    low, high = per_call / p50.high, per_call / p50.low
    note = f"items per call {(per_call - 1) * 100:+.1f}%: the rate from the p50 latency's interval" + (
        "" if p50.gated else "; " + p50.note
    )
    return MetricChange("items_per_s", old, new, ratio, low, high, outcome(low, high, tolerance, True), note, p50.gated)


ITEMS_CHANGED = 0.01  # baselines keep four digits: a smaller move is rounding, not new items


def _overall(changes: Sequence[MetricChange]) -> str:
    return _overall_of([c.outcome for c in changes if c.gated])


def _overall_of(outcomes: Sequence[str]) -> str:
    for status in (REGRESSED, INCONCLUSIVE, IMPROVED):
        if status in outcomes:
            return status
    return SAME


def outcome(low: float, high: float, tolerance: float, higher_is_better: bool) -> str:
    """The verdict for a ratio interval [low, high] of current / baseline."""
    if higher_is_better:  # as a "how much worse" ratio, like latency
        low, high = 1.0 / high if high else math.inf, 1.0 / low if low else math.inf
    worse, better = 1.0 + tolerance, 1.0 / (1.0 + tolerance)
    if low > worse:
        return REGRESSED
    if high < better:
        return IMPROVED
    if low >= better and high <= worse:
        return SAME
    return INCONCLUSIVE


def _ratio(old: float, new: float) -> float:
    if old > 0:
        return new / old
    return 1.0 if new == old else math.inf


def _figure_change(metric: Metric, baseline: Entry, current: Entry, tolerance: float) -> MetricChange | None:
    """A figure with one value a run, against the tolerance (never tighter than the row's own);
    reported, not gated, where the row says so or both values lie under its floor."""
    old, new = baseline.figure(metric.name), current.figure(metric.name)
    if old is None or new is None:
        return None
    allowed = max(tolerance, metric.min_tolerance_pct / 100.0)
    ratio = _ratio(old, new)
    counters = baseline.text("host_counter"), current.text("host_counter")
    if metric.source == HOST and counters[0] != counters[1]:
        verdict = outcome(ratio, ratio, allowed, metric.higher_is_better)
        note = f"reported, not gated (counted by {counters[0]} in the baseline, {counters[1]} now)"
        return MetricChange(metric.name, old, new, ratio, ratio, ratio, verdict, note, gated=False)
    verdict = outcome(ratio, ratio, allowed, metric.higher_is_better)
    change = MetricChange(metric.name, old, new, ratio, ratio, ratio, verdict, f"gated past {allowed * 100:.0f}%")
    if metric.compared == REPORTED:
        return replace(change, gated=False, note=metric.note)
    if max(old, new) < metric.floor:
        return replace(change, gated=False, note=metric.floor_note.format(floor=metric.floor))
    return replace(change, note=f"{metric.note}, {change.note}") if metric.note else change


COUNT_SLACK = 1e-6  # baselines keep counts per step to six decimals; a real change is 1/steps or more


def _same_count(old: float, new: float) -> bool:
    return math.isclose(old, new, rel_tol=1e-9, abs_tol=COUNT_SLACK)


def _count_change(metric: str, old: float, new: float) -> MetricChange:
    ratio = _ratio(old, new)
    verdict = SAME if _same_count(old, new) else REGRESSED if new > old else IMPROVED
    return MetricChange(metric, old, new, ratio, ratio, ratio, verdict, "compared exactly")


def _what_grew(metric: Metric, baseline: Entry, current: Entry) -> str:
    """What grew with a count, from the per-name metric the registry names (``details``): the
    operators that synchronize more, the graph breaks, recompiles and skips the baseline did not
    have ("" where nothing is named)."""
    if not metric.details:
        return ""
    old, new = baseline.per_name(metric.details), current.per_name(metric.details)
    if metric.name in COMPILE_EVENT_KINDS:  # one per-name metric for three counts: each reads its kind
        prefix = f"{COMPILE_EVENT_KINDS[metric.name]}: "
        old = {k: v for k, v in old.items() if k.startswith(prefix)}
        new = {k: v for k, v in new.items() if k.startswith(prefix)}
        grown = _grown(old, new)
        return f"new: {grown}" if grown else ""
    if metric.name == "host_syncs_per_step":
        return "synchronizing in " + (_grown(old, new) or "no operator named")
    grown = _grown(old, new, most=GROWN_SHOWN)
    return f"grew most: {grown}" if grown else ""


GROWN_SHOWN = 5


def _grown(old: Mapping[str, float], new: Mapping[str, float], most: int = 0) -> str:
    """The names whose count grew, with both counts: by name, or the ``most`` that grew most,
    the largest growth first."""
    grown = [name for name in sorted(new) if new[name] > old.get(name, 0)]
    if most:
        grown = sorted(grown, key=lambda name: old.get(name, 0) - new[name])[:most]
    return ", ".join(f"{name} {old.get(name, 0):g} -> {new[name]:g}" for name in grown)


def _kernel_mix_change(old: Mapping[str, float], new: Mapping[str, float]) -> MetricChange:
    moved = sorted(name for name in old if not _same_count(old[name], new[name]))
    names = ", ".join(f"{n} {old[n]:g} -> {new[n]:g}" for n in moved[:3]) + (" ..." if len(moved) > 3 else "")
    return MetricChange("kernel mix", len(old), len(new), 1.0, 1.0, 1.0, SAME, f"per-step counts moved: {names}")


def _interval_change(
    metric: str,
    old: float,
    new: float,
    old_ci: tuple[float, float],
    new_ci: tuple[float, float],
    tolerance: float,
) -> MetricChange:
    low = new_ci[0] / old_ci[1] if old_ci[1] > 0 else math.inf
    high = new_ci[1] / old_ci[0] if old_ci[0] > 0 else math.inf
    ratio = _ratio(old, new)
    verdict = outcome(low, high, tolerance, False)
    return MetricChange(metric, old, new, ratio, min(low, ratio), max(high, ratio), verdict, gated=False)


@dataclass(frozen=True)
class ClockShift:
    """The SM clock moved between the baseline's rounds and this run's.

    How far a step's time follows the clock cannot be told from one run: on the H100 a
    power-throttled 4096 bf16 GEMM ran 0.1727 ms at 1980 MHz and 0.19-0.20 ms at 1500-1650 MHz
    in later processes, less than in proportion, while within one run a single round at a
    lower clock could make the time look fully clock-bound. So a latency comparison spans
    both ends: no rescaling (time ignores the clock, as a memory copy's) and full rescaling
    (cycles, as pure compute).
    """

    baseline_mhz: float  # medians of the rounds' clocks
    current_mhz: float
    reference_mhz: float  # the clock both runs' rounds are rescaled to

    def rescale(self, times: Sequence[float], clocks: Sequence[float]) -> list[float]:
        return [t * c / self.reference_mhz for t, c in zip(times, clocks, strict=True)]


def clock_shift(baseline: Rounds, current: Rounds) -> ClockShift | None:
    """None where either run's clocks are unknown or all of them lie within 1%."""
    b_clocks, c_clocks = baseline.clock_mhz, current.clock_mhz
    if len(b_clocks) != len(baseline.medians_ms) or len(c_clocks) != len(current.medians_ms):
        return None
    clocks = [*b_clocks, *c_clocks]
    if not b_clocks or not c_clocks or min(clocks) <= 0 or max(clocks) / min(clocks) <= CLOCK_STEADY:
        return None
    return ClockShift(statistics.median(b_clocks), statistics.median(c_clocks), max(clocks))


def latency_change(baseline: Rounds, current: Rounds, tolerance_pct: float, metric: str = "p50_ms") -> MetricChange:
    """p50 against the baseline's, from per-round medians (the protocol asks it of the rounds
    so far, before there is an entry). Where the SM clock moved, the interval spans the timed
    and the clock-rescaled comparison: a verdict then holds however far the step's time
    follows the clock. A generation's TTFT and TPOT (``metric``) are compared the same way,
    from each call's median."""
    tolerance = tolerance_pct / 100.0
    before, after = list(baseline.medians_ms), list(current.medians_ms)
    old = quantile_interval(before, 0.5, SIDE_CONFIDENCE)
    new = quantile_interval(after, 0.5, SIDE_CONFIDENCE)
    ratio, low, high = new.value / old.value, new.low / old.high, new.high / old.low
    if before == after:  # the very same rounds (a report compared with itself): no change, no doubt
        ratio = low = high = 1.0
    shift = clock_shift(baseline, current)
    note = ""
    if shift is not None:
        b = quantile_interval(shift.rescale(before, baseline.clock_mhz), 0.5, SIDE_CONFIDENCE)
        c = quantile_interval(shift.rescale(after, current.clock_mhz), 0.5, SIDE_CONFIDENCE)
        low, high = min(low, c.low / b.high), max(high, c.high / b.low)
        note = (
            f"SM clock {shift.baseline_mhz:.0f} MHz in the baseline, {shift.current_mhz:.0f} MHz now: "
            f"{(ratio - 1) * 100:+.1f}% as timed, {(c.value / b.value - 1) * 100:+.1f}% rescaled to the clock"
        )
    verdict = outcome(low, high, tolerance, False)
    if verdict == INCONCLUSIVE:
        if shift is not None and outcome(ratio, ratio, tolerance, False) != SAME:
            advice = (
                "the clock, not the rounds, leaves this open: compare on a card at the baseline's clock "
                "(or lock the clocks: nvidia-smi --lock-gpu-clocks)"
            )
        else:
            advice = rounds_to_decide(ratio, (old.low, old.high), (new.low, new.high), len(after), tolerance)
        note = f"{note}; {advice}" if note else advice
    return MetricChange(metric, old.value, new.value, ratio, low, high, verdict, note)


def rounds_to_decide(
    ratio: float,
    old: tuple[float, float],
    new: tuple[float, float],
    rounds: int,
    tolerance: float,
) -> str:
    """How many rounds would make an inconclusive latency comparison decide.

    In log space the ratio's half-width is the baseline's plus the current run's, and
    the current run's shrinks as 1/sqrt(rounds). The interval must shrink until it
    no longer reaches the nearest tolerance boundary from the point estimate."""
    old_low, old_high = old
    new_low, new_high = new
    log_ratio = math.log(ratio)
    boundary = min(abs(log_ratio - math.log(1.0 + tolerance)), abs(log_ratio + math.log(1.0 + tolerance)))
    half_old = (math.log(old_high) - math.log(old_low)) / 2.0
    half_new = (math.log(new_high) - math.log(new_low)) / 2.0
    if boundary <= half_old or half_new <= 0:
        return (
            "the change lies within the baseline's own spread of the tolerance: more rounds now cannot decide it; "
            "re-record the baseline with more rounds (--gpuperf-rounds)"
        )
    # The estimate assumes the interval narrows as 1/sqrt(rounds); where it says fewer rounds
    # than were measured, that did not hold: advise twice as many, never fewer.
    needed = max(math.ceil(rounds * (half_new / (boundary - half_old)) ** 2), 2 * rounds)
    if needed > MAX_ROUNDS_ADVICE:
        return f"too close to the {tolerance * 100:g}% tolerance to decide in a practical number of rounds"
    return f"about {needed} rounds would decide it (--gpuperf-rounds {needed}; {rounds} were measured)"
