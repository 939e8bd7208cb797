"""Generation: what a generate call's tokens say about its requests, with the definitions.

Per request, with t0 when the call began and t1..tn when its n output tokens arrived:

- ``ttft_ms``: time to first token, t1 - t0 (the prefill, and anything before it);
- ``e2e_ms``: end to end, tn - t0;
- ``tpot_ms``: time per output token after the first, (e2e - ttft) / (n - 1), per request
  (AIPerf calls this ITL; vLLM's benchmarks call it TPOT);
- ``itl_ms``: every gap t(i+1) - t(i) of every request, pooled (vLLM's ITL);
- ``tokens_per_s``: output tokens of a call (every request's) over the call's span, per call;
- ``goodput_pct``: the share of requests meeting every SLO given (``ttft_ms``, ``tpot_ms``,
  ``e2e_ms``: each request's own value at or under it).

A batch of B requests in one call that all get a token at each step (static batching, as HF
``generate`` runs a batch) counts as B requests with the same times. Percentiles are
p50/p90/p95/p99 with order-statistic intervals (``judging.stats``); a percentile whose 95%
interval the sample count cannot reach is reported as unsupported and never gated.

Token times come from a :class:`TokenClock` (CUDA events on the GPU) through a
:class:`Streamer` that ``generate`` or a decode loop calls per token, or from the per-request
metrics vLLM returns (:func:`vllm_call`; vLLM's own host clock).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_gpuperf.errors import GpuperfError
from pytest_gpuperf.judging.stats import Estimate, quantile_interval
from pytest_gpuperf.measuring.nvtx import nvtx_pop, nvtx_push

PERCENTILES = (0.5, 0.9, 0.95, 0.99)
SLO_KEYS = ("ttft_ms", "tpot_ms", "e2e_ms")


class GenerationError(GpuperfError, ValueError):
    """A generate call that cannot be read as one (no token put, vLLM without its metrics)."""


@dataclass(frozen=True)
class RequestTimes:
    ttft_ms: float
    e2e_ms: float
    tokens: int  # output tokens

    @property
    def tpot_ms(self) -> float | None:
        """Time per output token after the first; None for a request of one token."""
        return (self.e2e_ms - self.ttft_ms) / (self.tokens - 1) if self.tokens > 1 else None

    def meets(self, slo: Mapping[str, float]) -> bool:
        for key, limit in slo.items():
            value = self.tpot_ms if key == "tpot_ms" else getattr(self, key)
            if value is not None and value > limit:
                return False
        return True


@dataclass(frozen=True)
class GenerationCall:
    """One generate call: its requests, every token gap (pooled; empty where the source has
    no per-token times), and how long the call took from its start to its last token."""

    requests: tuple[RequestTimes, ...]
    gaps_ms: tuple[float, ...]
    span_ms: float
    kv_blocks: int | None = None  # the most KV-pool blocks in use during the call
    kv_mb: float | None = None  # ... and their size

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.requests)


def streamed_call(token_ms: Sequence[float], batch: int, kv: tuple[int, float] | None = None) -> GenerationCall:
    """A call whose ``batch`` requests got a token at each of ``token_ms`` (ms since the call began)."""
    if not token_ms:
        raise GenerationError(
            "the generate call put no token to its streamer: pass the streamer on to generate(streamer=...), "
            "or call streamer.put(new_tokens) once per decoded step in your own loop"
        )
    request = RequestTimes(token_ms[0], token_ms[-1], len(token_ms))
    gaps = [later - earlier for earlier, later in itertools.pairwise(token_ms)]
    blocks, mb = kv if kv is not None else (None, None)
    return GenerationCall((request,) * batch, tuple(gaps) * batch, token_ms[-1], blocks, mb)


# --- the clock and the streamer -----------------------------------------------------------------------------


class TokenClock(Protocol):
    """Marks instants of a generate call on one clock (CUDA events on the GPU)."""

    name: str

    def mark(self) -> Any:
        """An instant, now in the call's stream of work."""
        ...

    def elapsed_ms(self, start: Any, end: Any) -> float:
        """Between two marks, once the work before both is done (after a synchronization)."""
        ...


@dataclass
class _PendingCall:
    start: Any
    tokens: list[Any]
    batch: int
    kv_blocks: int | None = None
    kv_mb: float | None = None


KvProbe = Callable[[], tuple[int, float]]  # blocks in use now and their MB


class Streamer:
    """What a generate call is handed as ``streamer``: HF transformers calls ``put`` with the
    prompt, then with each step's new tokens, then ``end``; a decode loop calls ``put(tokens)``
    once per step (shape (batch,) or (batch, 1)). Each token step is marked on the clock.

    Only calls between :meth:`collect` and :meth:`stop` (the timed rounds) are kept."""

    def __init__(
        self, clock: TokenClock | None, label: str = "generate", kv_probe: KvProbe | None = None, also: Any = None
    ) -> None:
        self._clock = clock
        self._also = also  # the test's own streamer, called after each mark
        self._label = label
        self._kv_probe = kv_probe
        self._current: _PendingCall | None = None
        self._kept: list[_PendingCall] = []
        self._collecting = False

    # HF's BaseStreamer interface
    def put(self, value: Any) -> None:
        self._mark(value)
        if self._also is not None:
            self._also.put(value)

    def end(self) -> None:
        """HF calls this when generation ends; the call's end is taken when it returns."""
        if self._also is not None:
            self._also.end()

    def _mark(self, value: Any) -> None:
        call = self._current
        if call is None:
            return  # outside a measured call
        if not call.tokens and call.batch == 0 and _is_prompt(value):
            call.batch = _rows(value)  # HF puts the prompt first: the batch, no token
            return
        if not call.tokens:
            nvtx_pop()  # prefill
            nvtx_push(f"{self._label}: decode")
        call.tokens.append(self._clock.mark() if self._clock is not None else None)
        call.batch = call.batch or _rows(value)
        if self._kv_probe is not None:
            blocks, mb = self._kv_probe()
            if call.kv_blocks is None or blocks > call.kv_blocks:
                call.kv_blocks, call.kv_mb = blocks, mb

    # the measured call
    def begin_call(self) -> None:
        nvtx_push(self._label)
        nvtx_push(f"{self._label}: prefill")
        self._current = _PendingCall(self._clock.mark() if self._clock is not None else None, [], 0)

    def end_call(self) -> None:
        call, self._current = self._current, None
        nvtx_pop()  # prefill or decode
        nvtx_pop()
        if call is not None and self._collecting:
            self._kept.append(call)

    def collect(self) -> None:
        """Keep the calls from now on (the timed rounds begin), forgetting earlier ones."""
        self._kept, self._collecting = [], True

    def stop(self) -> None:
        self._collecting = False

    @property
    def source(self) -> str:
        return self._clock.name if self._clock is not None else "none"

    def calls(self) -> list[GenerationCall]:
        """The kept calls, read off the clock: call after the work is done (the rounds synchronize)."""
        clock = self._clock
        if clock is None:
            return []
        return [
            streamed_call(
                [clock.elapsed_ms(c.start, t) for t in c.tokens],
                max(c.batch, 1),
                (c.kv_blocks, c.kv_mb) if c.kv_blocks is not None and c.kv_mb is not None else None,
            )
            for c in self._kept
        ]


def kv_probe(pool: Any) -> KvProbe | None:
    """Reads a kv_pool's blocks in use and their MB (None: no pool given)."""
    if pool is None:
        return None
    if not callable(getattr(pool, "stats", None)):
        raise GenerationError(f"kv_pool=: expected a kv_pool (with .stats()), not {type(pool).__name__}")

    def read() -> tuple[int, float]:
        stats = pool.stats()
        return stats.blocks_used, stats.blocks_used * stats.bytes_per_block / 2**20

    return read


def _is_prompt(value: Any) -> bool:
    """HF's first put: the prompt ids, (batch, prompt length > 1)."""
    shape = getattr(value, "shape", None)
    return shape is not None and len(shape) == 2 and shape[1] > 1


def _rows(value: Any) -> int:
    """Requests a put covers: the first dimension of a tensor or list; one for a scalar."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else 1
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return len(value) or 1
    return 1


class Recorder(Protocol):
    """Where a generation's calls come from: a :class:`Streamer`, or vLLM's returned metrics."""

    @property
    def source(self) -> str: ...

    def collect(self) -> None: ...

    def stop(self) -> None: ...

    def calls(self) -> list[GenerationCall]: ...


@dataclass(frozen=True)
class Generation:
    """What the protocol needs to judge a generation: its calls, and the SLOs goodput counts against."""

    recorder: Recorder
    slo: Mapping[str, float]


# --- vLLM ------------------------------------------------------------------------------------------------


class VllmCalls:
    """The calls of ``LLM.generate`` kept during the timed rounds, read from what each returned."""

    source = "vllm"

    def __init__(self) -> None:
        self._kept: list[GenerationCall] = []
        self._collecting = False

    def add(self, outputs: Sequence[Any]) -> None:
        call = vllm_call(outputs)  # read every call: a missing metric fails the warmup, not a round
        if self._collecting:
            self._kept.append(call)

    def collect(self) -> None:
        self._kept, self._collecting = [], True

    def stop(self) -> None:
        self._collecting = False

    def calls(self) -> list[GenerationCall]:
        return list(self._kept)


def vllm_call(outputs: Sequence[Any]) -> GenerationCall:
    """The requests of one ``LLM.generate`` call, from the metrics vLLM returns with each
    ``RequestOutput`` (vLLM's host clock; no per-token times, so no pooled gaps).

    vLLM V1 (``RequestStateStats``): TTFT is ``first_token_latency`` (arrival to first token),
    the decode ``last_token_ts - first_token_ts`` (the engine core's clock), tokens
    ``num_generation_tokens``. vLLM V0 (``RequestMetrics``): ``first_token_time``,
    ``last_token_time`` and ``arrival_time`` (one wall clock). Not run here: vLLM cannot be
    installed on this project's machines; the arithmetic is tested on recorded metrics."""
    requests = tuple(_vllm_request(output, index) for index, output in enumerate(outputs))
    if not requests:
        raise GenerationError("LLM.generate returned no request outputs")
    return GenerationCall(requests, (), max(r.e2e_ms for r in requests))


def _vllm_request(output: Any, index: int) -> RequestTimes:
    metrics = getattr(output, "metrics", None)
    if metrics is None:
        raise GenerationError(
            f"request output {index} has no metrics: vLLM fills RequestOutput.metrics only with stats on "
            "(LLM(..., disable_log_stats=False))"
        )
    tokens = _generated_tokens(output, metrics)
    if hasattr(metrics, "first_token_latency") and hasattr(metrics, "first_token_ts"):  # V1
        ttft_s = float(metrics.first_token_latency)
        decode_s = float(metrics.last_token_ts) - float(metrics.first_token_ts)
    elif hasattr(metrics, "first_token_time") and hasattr(metrics, "arrival_time"):  # V0
        ttft_s = float(metrics.first_token_time) - float(metrics.arrival_time)
        decode_s = float(metrics.last_token_time) - float(metrics.first_token_time)
    else:
        raise GenerationError(f"request output {index}: metrics of an unknown vLLM version: {type(metrics).__name__}")
    if not (math.isfinite(ttft_s) and math.isfinite(decode_s)) or ttft_s < 0 or decode_s < 0 or tokens < 1:
        raise GenerationError(
            f"request output {index}: metrics that cannot be times (ttft {ttft_s} s, decode {decode_s} s, "
            f"{tokens} tokens)"
        )
    return RequestTimes(ttft_s * 1000.0, (ttft_s + decode_s) * 1000.0, tokens)


def _generated_tokens(output: Any, metrics: Any) -> int:
    counted = getattr(metrics, "num_generation_tokens", None)
    if isinstance(counted, int) and counted > 0:
        return counted
    completions = getattr(output, "outputs", None) or []
    return len(completions[0].token_ids) if completions else 0


# --- the statistics --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Percentiles:
    """p50, p90, p95 and p99 of some samples, with their intervals."""

    samples: int
    estimates: tuple[Estimate, ...]  # in the order of PERCENTILES

    def at(self, q: float) -> Estimate:
        return self.estimates[PERCENTILES.index(q)]

    def supported(self, q: float) -> bool:
        """Enough samples for the percentile's 95% interval (p99 needs a few hundred)."""
        return self.at(q).exact_bounds

    @classmethod
    def of(cls, samples: Sequence[float]) -> Percentiles | None:
        if not samples:
            return None
        return cls(len(samples), tuple(quantile_interval(samples, q) for q in PERCENTILES))


@dataclass(frozen=True)
class GenerationStats:
    source: str  # the clock: "cuda-events", "host-clock", or "vllm" (vLLM's per-request metrics)
    calls: int
    requests: int
    tokens: int
    ttft_ms: Percentiles
    e2e_ms: Percentiles
    tpot_ms: Percentiles | None  # None where no request had two tokens
    itl_ms: Percentiles | None  # None where the source has no per-token times (vLLM)
    tokens_per_s: Estimate | None  # per call, median with its interval (None: calls of no duration)
    goodput_pct: float | None  # None where no SLO was given
    slo: tuple[tuple[str, float], ...]
    ttft_per_call_ms: tuple[float, ...]  # each call's median: prefill compared apart from decode
    tpot_per_call_ms: tuple[float, ...]
    kv_blocks_per_request: float | None = None
    kv_mb_per_request: float | None = None


def generation_stats(calls: Sequence[GenerationCall], source: str, slo: Mapping[str, float]) -> GenerationStats:
    if not calls:
        raise GenerationError("no generate call was timed")
    requests = [r for c in calls for r in c.requests]
    ttft = Percentiles.of([r.ttft_ms for r in requests])
    e2e = Percentiles.of([r.e2e_ms for r in requests])
    assert ttft is not None and e2e is not None  # every call has a request
    rates = [c.tokens / (c.span_ms / 1000.0) for c in calls if c.span_ms > 0]
    tpot = Percentiles.of([t for r in requests if (t := r.tpot_ms) is not None])
    # Per request: the call's most blocks in use, over its requests (a batch shares the pool).
    kv = [(c.kv_blocks / len(c.requests), c.kv_mb / len(c.requests)) for c in calls if c.kv_blocks and c.kv_mb]
    return GenerationStats(
        source=source,
        calls=len(calls),
        requests=len(requests),
        tokens=sum(c.tokens for c in calls),
        ttft_ms=ttft,
        e2e_ms=e2e,
        tpot_ms=tpot,
        itl_ms=Percentiles.of([g for c in calls for g in c.gaps_ms]),
        tokens_per_s=quantile_interval(rates, 0.5) if rates else None,
        goodput_pct=100.0 * sum(r.meets(slo) for r in requests) / len(requests) if slo else None,
        slo=tuple(sorted(slo.items())),
        ttft_per_call_ms=tuple(statistics.median(r.ttft_ms for r in c.requests) for c in calls),
        tpot_per_call_ms=tuple(t for c in calls if (t := _call_tpot(c)) is not None),
        kv_blocks_per_request=max(b for b, _ in kv) if kv else None,
        kv_mb_per_request=max(mb for _, mb in kv) if kv else None,
    )


def _call_tpot(call: GenerationCall) -> float | None:
    tpots = [t for r in call.requests if (t := r.tpot_ms) is not None]
    return statistics.median(tpots) if tpots else None


def slo_of(budget: Mapping[str, float], given: Mapping[str, float] | None) -> dict[str, float]:
    """The SLOs goodput counts against: those given, else the budget's ttft_ms and tpot_ms."""
    if given is not None:
        unknown = sorted(set(given) - set(SLO_KEYS))
        if unknown:
            raise GenerationError(f"slo: unknown keys {', '.join(unknown)}; keys: {', '.join(SLO_KEYS)}")
        return {k: float(v) for k, v in given.items()}
    return {k: budget[k] for k in ("ttft_ms", "tpot_ms") if k in budget}
