"""One typed row per measurement: what the report's table reads, the JSON report's object for
the test, and what a pytest-xdist worker sends its controller (``to_wire``/``from_wire``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from pytest_gpuperf.analysis.results import plain
from pytest_gpuperf.judging.baseline import entry_to_dict
from pytest_gpuperf.judging.compare import Comparison
from pytest_gpuperf.judging.verdict import Verdict
from pytest_gpuperf.measuring.protocol import Measurement
from pytest_gpuperf.report.generation import generation_json, generation_summary
from pytest_gpuperf.report.traces import balance_json


@dataclass(frozen=True)
class Row:
    test: str
    p50_ms: float
    p99_ms: float
    gpu_active_pct: float | None  # None: no profiled trace with device work
    dispatch_ratio: float | None
    peak_mem_mb: float | None
    bottleneck: str | None  # the primary device's class
    baseline_status: str  # compare's statuses, or "not compared"
    baseline_summary: str  # the table's cell, e.g. "+2.1% same"
    baseline_reason: str  # why a test is new, not compared or its baseline unreadable
    recorded: bool  # this run staged it as a new baseline entry
    verdict: str
    throttled: bool
    over_budget: bool
    ranks_summary: str | None  # every rank's figures, under torchrun
    generation_summary: str | None  # TTFT, TPOT and the rest, for gpu_profiler.generate
    json: dict[str, Any]  # the JSON report's object for this measurement

    def to_wire(self) -> dict[str, Any]:
        """Plain data that execnet carries (builtin types only)."""
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Row:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def row(
    m: Measurement, verdict: Verdict, *, recorded: bool, trace_saved: str | None, failure: str | None = None
) -> Row:
    """``failure``: the failure text of a failed test, as the terminal shows it."""
    device = m.device
    c = m.comparison
    return Row(
        test=m.test_id,
        p50_ms=m.p50.value,
        p99_ms=m.p99.value,
        gpu_active_pct=device.gpu_active_pct if device is not None else None,
        dispatch_ratio=device.dispatch_ratio if device is not None else None,
        peak_mem_mb=m.rounds_info.peak_mem_mb,
        bottleneck=device.classification.kind if device is not None and device.classification else None,
        baseline_status=c.status if c is not None else "not compared",
        baseline_summary=c.summary() if c is not None else "-",
        baseline_reason=c.reason if c is not None else "not compared",
        recorded=recorded,
        verdict=verdict.label,
        throttled=m.rounds_info.throttled,
        over_budget=bool(verdict.over_budget),
        ranks_summary=m.ranks.describe() if m.ranks is not None else None,
        generation_summary=generation_summary(m.generation) if m.generation is not None else None,
        json={**_json(m, verdict, recorded, trace_saved), "failure": failure},
    )


def _json(m: Measurement, verdict: Verdict, recorded: bool, trace_saved: str | None) -> dict[str, Any]:
    device = m.device
    return {
        "test": m.test_id,
        "env": asdict(m.env),
        "verdict": verdict.label,
        "warmup_calls": m.warmup_calls,
        "calls_per_round": m.calls_per_round,
        "rounds": len(m.round_samples_ms),
        "samples": len(m.samples),
        "p50_ms": asdict(m.p50),
        "p99_ms": asdict(m.p99),
        "mean_ms": m.mean_ms,
        "round_medians_ms": m.round_medians_ms,
        "items": m.items,
        "items_per_s": asdict(m.items_per_s) if m.items_per_s else None,
        "peak_mem_mb": m.rounds_info.peak_mem_mb,
        "new_allocations": m.rounds_info.new_allocations,
        "new_allocs_per_step": m.new_allocs_per_step,
        "compiles": asdict(m.compiles) if m.compiles is not None else None,
        "generation": generation_json(m.generation),
        "host_work": _host_work_json(m),
        "compiled_in_rounds": m.compiled_in_rounds,
        "sm_clock_mhz": m.rounds_info.sm_clock_mhz,
        "sm_clock_max_mhz": m.rounds_info.sm_clock_max_mhz,
        "throttled": m.rounds_info.throttled,
        "budgets": [asdict(b) for b in m.budgets],
        "trace": m.trace.to_dict() if m.trace is not None else None,
        "trace_unavailable": m.trace_unavailable,
        "trace_saved": trace_saved,
        "bottleneck": plain(device.classification) if device and device.classification else None,
        "wall_s": m.wall_s,
        "round_clock_mhz": list(m.round_clock_mhz),
        "baseline": _baseline_json(m.comparison, recorded),
        "ranks": _ranks_json(m),
        "over_budget": bool(verdict.over_budget),
        "problems": list(verdict.problems),
        "entry": entry_to_dict(m.entry),  # what a baseline would keep: `gpuperf compare` reads it
    }


def _host_work_json(m: Measurement) -> dict[str, Any] | None:
    work = m.host_work
    if work is None:
        return None
    return {
        "lines_per_call": list(work.lines_per_call),
        "calls_per_call": list(work.calls_per_call),
        "tracer": work.tracer,
        "count_s": work.count_s,
        "unsteady": work.unsteady or None,
    }


def _ranks_json(m: Measurement) -> dict[str, Any] | None:
    if m.ranks is None:
        return None
    return {
        "per_rank": [asdict(r) for r in m.ranks.results],
        "slowest_rank": m.ranks.slowest.rank,
        "slowest_p99_ms": m.ranks.slowest.p99_ms,
        "nccl_imbalance_pct": m.ranks.nccl_imbalance_pct,
        "balance": balance_json(m.ranks.balance),
        "summary": m.ranks.describe(),
    }


def _baseline_json(c: Comparison | None, recorded: bool) -> dict[str, Any]:
    if c is None:
        return {"status": "not compared", "summary": "-", "reason": "not compared", "recorded": False}
    out = asdict(c)
    out["summary"] = c.summary()
    # The reason for the verdict: the gated metrics that decided it (empty for same/new).
    out["decided_by"] = [change.describe() for change in c.changes if change.gated and change.outcome == c.status]
    out["gates"] = c.gates()  # each gate that judged the test, with its outcome
    out["recorded"] = recorded
    return out
