"""A generation's figures as text: TTFT, TPOT, ITL, end to end, tokens/s, goodput and memory
per request, each percentile with its interval or marked unsupported."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pytest_gpuperf.judging.stats import Estimate
from pytest_gpuperf.judging.text import count
from pytest_gpuperf.measuring.generation import PERCENTILES, GenerationStats, Percentiles


def generation_lines(g: GenerationStats, step_mem_mb: float | None, indent: str = "  ") -> list[str]:
    per_call = g.requests // g.calls if g.calls else g.requests
    lines = [
        f"generation ({g.source}): {count(g.calls, 'call')} x {count(per_call, 'request')}, "
        f"{count(g.tokens, 'output token')}",
        f"{indent}TTFT {_spread(g.ttft_ms)}",
    ]
    if g.tpot_ms is not None:
        lines.append(f"{indent}TPOT {_spread(g.tpot_ms)}")
    if g.itl_ms is not None:
        lines.append(f"{indent}ITL (every token gap, pooled) {_spread(g.itl_ms)}")
    lines.append(f"{indent}end to end {_spread(g.e2e_ms)}")
    if g.tokens_per_s is not None:
        lines.append(f"{indent}{_estimate(g.tokens_per_s, 'tokens/s')} per call (output tokens over the call's span)")
    if g.goodput_pct is not None:
        slo = ", ".join(f"{key} <= {limit:g}" for key, limit in g.slo)
        lines.append(f"{indent}goodput {g.goodput_pct:.1f}% of requests meet every SLO ({slo})")
    if step_mem_mb is not None and per_call:
        memory = (
            f"{indent}peak memory per request {step_mem_mb / per_call:.1f} MB (the call's own peak over its requests)"
        )
        if g.kv_mb_per_request is not None:
            memory += f"; KV cache {g.kv_mb_per_request:.1f} MB ({g.kv_blocks_per_request:g} blocks) per request"
        lines.append(memory)
    return lines


def generation_summary(g: GenerationStats) -> str:
    """One line under the report's table: the medians, the pooled gaps' p99, the rate, goodput."""
    parts = [f"TTFT p50 {g.ttft_ms.at(0.5).value:.4g} ms"]
    if g.tpot_ms is not None:
        parts.append(f"TPOT p50 {g.tpot_ms.at(0.5).value:.4g} ms")
    if g.itl_ms is not None:
        p99 = g.itl_ms.at(0.99)
        parts.append(f"ITL p99 {p99.value:.4g} ms" + ("" if g.itl_ms.supported(0.99) else " (unsupported)"))
    if g.tokens_per_s is not None:
        parts.append(f"{g.tokens_per_s.value:.4g} tokens/s")
    if g.goodput_pct is not None:
        parts.append(f"goodput {g.goodput_pct:.1f}%")
    return f"generation ({g.source}, {g.requests} requests): " + ", ".join(parts)


def _spread(p: Percentiles) -> str:
    parts = []
    for q in PERCENTILES:
        name = f"p{q * 100:g}"
        if p.supported(q):
            parts.append(f"{name} {_estimate(p.at(q), 'ms')}")
        else:
            parts.append(f"{name} {p.at(q).value:.4g} ms (unsupported: {p.samples} samples)")
    return "; ".join(parts)


def _estimate(e: Estimate, unit: str) -> str:
    return f"{e.value:.4g} {unit} [95% CI {e.low:.4g}, {e.high:.4g}]"


def generation_json(g: GenerationStats | None) -> dict[str, Any] | None:
    if g is None:
        return None

    def spread(p: Percentiles | None) -> dict[str, Any] | None:
        if p is None:
            return None
        return {
            "samples": p.samples,
            **{f"p{q * 100:g}": {**asdict(p.at(q)), "supported": p.supported(q)} for q in PERCENTILES},
        }

    return {
        "source": g.source,
        "calls": g.calls,
        "requests": g.requests,
        "output_tokens": g.tokens,
        "ttft_ms": spread(g.ttft_ms),
        "tpot_ms": spread(g.tpot_ms),
        "itl_ms": spread(g.itl_ms),
        "e2e_ms": spread(g.e2e_ms),
        "tokens_per_s": asdict(g.tokens_per_s) if g.tokens_per_s is not None else None,
        "goodput_pct": g.goodput_pct,
        "slo": dict(g.slo),
        "ttft_per_call_ms": list(g.ttft_per_call_ms),
        "tpot_per_call_ms": list(g.tpot_per_call_ms),
        "kv_blocks_per_request": g.kv_blocks_per_request,
        "kv_mb_per_request": g.kv_mb_per_request,
    }
