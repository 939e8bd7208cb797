"""Generation budgets: the definitions' arithmetic, the streamer protocol HF transformers and a
decode loop use, the vLLM adapter on per-request metrics, and the plugin judging and comparing
TTFT and TPOT apart (a replayed token clock; the CUDA-event clock is shown in tests/test_gpu.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

# Imported here, before pytester's in-process runs: a run that first imports yaml has it removed from
# sys.modules afterwards, and libyaml's parser then builds nodes the next import cannot construct.
from pytest_gpuperf.judging.baseline import read
from pytest_gpuperf.measuring.generation import (
    GenerationError,
    RequestTimes,
    Streamer,
    generation_stats,
    slo_of,
    streamed_call,
    vllm_call,
)
from tests.conftest import REPO_ON_PATH

# --- the definitions ----------------------------------------------------------------------------------------


def test_a_streamed_call_gives_each_request_its_ttft_tpot_and_every_gap() -> None:
    call = streamed_call([10.0, 12.0, 15.0, 16.0], batch=2)
    assert call.requests == (RequestTimes(10.0, 16.0, 4),) * 2
    assert call.requests[0].tpot_ms == pytest.approx(2.0)  # (16 - 10) / (4 - 1)
    assert call.gaps_ms == (2.0, 3.0, 1.0) * 2  # pooled over both requests
    assert call.tokens == 8 and call.span_ms == 16.0


def test_a_one_token_request_has_no_tpot_and_a_call_without_tokens_is_an_error() -> None:
    assert RequestTimes(5.0, 5.0, 1).tpot_ms is None
    with pytest.raises(GenerationError, match=r"put no token to its streamer"):
        streamed_call([], batch=1)


def test_stats_over_calls_pool_requests_and_gaps_and_count_goodput() -> None:
    calls = [streamed_call([10.0 + i, 12.0 + i, 14.0 + i], batch=4) for i in range(5)]
    g = generation_stats(calls, "replay", {"ttft_ms": 12.0})
    assert (g.calls, g.requests, g.tokens) == (5, 20, 60)
    assert g.ttft_ms.at(0.5).value == 12.0 and g.tpot_ms is not None and g.tpot_ms.at(0.5).value == 2.0
    assert g.itl_ms is not None and g.itl_ms.samples == 40
    assert g.goodput_pct == pytest.approx(60.0)  # calls 0, 1, 2 have TTFT <= 12 ms: 12 of 20 requests
    assert g.ttft_per_call_ms == (10.0, 11.0, 12.0, 13.0, 14.0)
    assert g.tokens_per_s is not None and g.tokens_per_s.value == pytest.approx(12 / 0.016)  # the median call
    # 20 requests cannot support a p99 (its 95% interval needs hundreds of samples); p50 they can.
    assert g.ttft_ms.supported(0.5) and not g.ttft_ms.supported(0.99)


def test_the_slos_are_those_given_else_the_budgets_ttft_and_tpot() -> None:
    assert slo_of({"ttft_ms": 50, "tpot_ms": 8, "p99_ms": 900}, None) == {"ttft_ms": 50, "tpot_ms": 8}
    assert slo_of({"ttft_ms": 50}, {"e2e_ms": 400}) == {"e2e_ms": 400.0}
    with pytest.raises(GenerationError, match="unknown keys itl_ms"):
        slo_of({}, {"itl_ms": 3})


# --- the streamer -----------------------------------------------------------------------------------------


class Ticks:
    """A clock that advances 1 ms a mark."""

    name = "ticks"

    def __init__(self) -> None:
        self.now = 0.0

    def mark(self) -> float:
        self.now += 1.0
        return self.now

    def elapsed_ms(self, start: float, end: float) -> float:
        return end - start


class Shaped:
    def __init__(self, *shape: int) -> None:
        self.shape = shape


def test_hf_generate_puts_the_prompt_first_then_each_steps_tokens() -> None:
    streamer = Streamer(Ticks())
    streamer.collect()
    streamer.begin_call()  # mark 1
    streamer.put(Shaped(3, 17))  # the prompt: three requests of 17 tokens, not a token
    for _ in range(4):
        streamer.put(Shaped(3))  # marks 2..5
    streamer.end()
    streamer.end_call()
    (call,) = streamer.calls()
    assert call.requests == (RequestTimes(1.0, 4.0, 4),) * 3


def test_a_decode_loop_puts_one_step_at_a_time_and_only_the_timed_rounds_are_kept() -> None:
    streamer = Streamer(Ticks())
    streamer.begin_call()  # warmup: not kept
    streamer.put(7)
    streamer.end_call()
    streamer.collect()
    streamer.begin_call()
    for _ in range(3):
        streamer.put([[1], [2]])  # (batch, 1)
    streamer.end_call()
    streamer.stop()
    streamer.begin_call()  # the profiled pass: not kept
    streamer.put(7)
    streamer.end_call()
    (call,) = streamer.calls()
    assert len(call.requests) == 2 and call.requests[0].tokens == 3


def test_the_tests_own_streamer_sees_every_put_and_the_end() -> None:
    seen: list[Any] = []
    mine = SimpleNamespace(put=seen.append, end=lambda: seen.append("end"))
    streamer = Streamer(Ticks(), also=mine)
    streamer.begin_call()
    streamer.put(Shaped(1, 5))
    streamer.put(Shaped(1))
    streamer.end()
    streamer.end_call()
    assert [type(v).__name__ if v != "end" else v for v in seen] == ["Shaped", "Shaped", "end"]


# --- vLLM: written against its documented RequestOutput, not run (vLLM cannot be installed here) ----------


def _v1(ttft_s: float, first_ts: float, last_ts: float, tokens: int) -> Any:
    """A RequestOutput with vLLM V1's RequestStateStats (values written by hand, vLLM's field names)."""
    metrics = SimpleNamespace(
        num_generation_tokens=tokens,
        arrival_time=1_764_000_000.0,  # wall clock
        queued_ts=first_ts - ttft_s,
        scheduled_ts=first_ts - ttft_s + 0.001,
        first_token_ts=first_ts,  # the engine core's monotonic clock
        last_token_ts=last_ts,
        first_token_latency=ttft_s,
    )
    return SimpleNamespace(metrics=metrics, outputs=[SimpleNamespace(token_ids=list(range(tokens)))])


def test_vllm_v1_metrics_give_ttft_from_arrival_and_decode_on_the_engines_clock() -> None:
    call = vllm_call([_v1(0.050, 1000.0, 1000.630, 64), _v1(0.080, 1000.01, 1000.64, 64)])
    first, second = call.requests
    assert first.ttft_ms == pytest.approx(50.0) and first.e2e_ms == pytest.approx(680.0)
    assert first.tpot_ms == pytest.approx(630.0 / 63)
    assert second.ttft_ms == pytest.approx(80.0) and second.e2e_ms == pytest.approx(710.0)
    assert call.gaps_ms == () and call.span_ms == pytest.approx(710.0)
    g = generation_stats([call], "vllm", {"tpot_ms": 10.0})
    assert g.itl_ms is None and g.goodput_pct == pytest.approx(100.0)


def test_vllm_v0_metrics_read_one_wall_clock() -> None:
    metrics = SimpleNamespace(arrival_time=100.0, first_token_time=100.2, last_token_time=101.2, finished_time=101.3)
    output = SimpleNamespace(metrics=metrics, outputs=[SimpleNamespace(token_ids=[1] * 11)])
    (request,) = vllm_call([output]).requests
    assert (request.ttft_ms, request.e2e_ms, request.tokens) == (pytest.approx(200.0), pytest.approx(1200.0), 11)
    assert request.tpot_ms == pytest.approx(100.0)


def test_vllm_without_metrics_or_with_impossible_ones_is_a_named_error() -> None:
    with pytest.raises(GenerationError, match=r"disable_log_stats=False"):
        vllm_call([SimpleNamespace(metrics=None, outputs=[])])
    with pytest.raises(GenerationError, match="cannot be times"):
        vllm_call([_v1(0.05, 1000.0, 999.0, 8)])
    with pytest.raises(GenerationError, match="unknown vLLM version"):
        vllm_call([SimpleNamespace(metrics=SimpleNamespace(), outputs=[])])


# --- the plugin ------------------------------------------------------------------------------------------


def _conftest(pytester: pytest.Pytester, ttft_ms: float, tpot_ms: float, tokens: int = 4) -> None:
    """A replay backend whose generate calls' tokens come ttft_ms, then tpot_ms (or $REPLAY_TPOT) apart."""
    pytester.makeconftest(
        f"""
        import os
        {REPO_ON_PATH}
        from tests.replay import ReplayBackend

        def pytest_gpuperf_make_backend(config, settings):
            tpot = float(os.environ.get("REPLAY_TPOT", {tpot_ms}))
            return ReplayBackend([2.0], tokens=({ttft_ms}, tpot, {tokens}))
        """
    )


# Five calls a round, ten rounds: 50 calls of two requests (the replayed calls take no time).
QUICK = ("--gpuperf", "-p", "no:cacheprovider", "--gpuperf-round-ms", "0", "--gpuperf-warmup-ms", "0")

DECODE_LOOP = """
    import pytest

    def decode(prompt, streamer, steps=4):
        for _ in range(steps):
            streamer.put([1, 2])  # a batch of two requests gets a token
        return "done"

    @pytest.mark.gpu_budget(ttft_ms=15, tpot_ms={tpot_budget}, itl_p99_ms=5, goodput_pct_min=90)
    def test_decode(gpu_profiler):
        assert gpu_profiler.generate(decode, "prompt") == "done"
    """


def test_generation_budgets_judge_ttft_and_tpot_apart(pytester: pytest.Pytester) -> None:
    _conftest(pytester, ttft_ms=10.0, tpot_ms=2.0)
    pytester.makepyfile(test_gen=DECODE_LOOP.format(tpot_budget=1.5))
    result = pytester.runpytest(*QUICK, "--gpuperf-json", "out.json", "--gpuperf-html", "report.html")
    result.assert_outcomes(failed=1)
    page = (pytester.path / "report.html").read_text()
    assert '<tr><td>TPOT p50</td><td class="n">2 ms</td>' in page
    assert '<tr><td>ITL p99</td><td class="n">2 ms</td><td class="muted">unsupported: 300 samples</td></tr>' in page
    result.stdout.fnmatch_lines(
        [
            "*tpot_p50_ms = 2 ms * > budget 1.5 ms (over by 33.3%)",
            "*goodput_pct = 0 % < budget 90 %*",
            "*generation (replay): 50 calls x 2 requests, 400 output tokens",
            "*TTFT p50 10 ms *; p90 10 ms *; p99 10 ms (unsupported: 100 samples)",
            "*TPOT p50 2 ms*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "test_gen.py::test_decode: generation (replay, 100 requests): TTFT p50 10 ms, TPOT p50 2 ms, "
            "ITL p99 2 ms (unsupported), 500 tokens/s, goodput 0.0%"
        ]
    )
    text = result.stdout.str()
    assert "ttft_p50_ms = " not in text  # within its budget: not listed as over
    budgets = {b["key"]: b for b in json.loads((pytester.path / "out.json").read_text())["tests"][0]["budgets"]}
    assert budgets["ttft_ms"]["status"] == "pass"
    assert budgets["itl_p99_ms"]["status"] == "unavailable"
    assert "p99 of 300 token gaps: too few for its 95% interval" in budgets["itl_p99_ms"]["reason"]


def test_a_slower_decode_regresses_tpot_and_not_ttft_against_the_baseline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_gen=DECODE_LOOP.format(tpot_budget=100))
    _conftest(pytester, ttft_ms=10.0, tpot_ms=2.0)
    pytester.runpytest(*QUICK, "--gpuperf-update-baselines").assert_outcomes(passed=1)
    recorded = read(next((pytester.path / "baselines").rglob("*.yaml")))
    assert recorded is not None
    entry = recorded.entries["test_decode"]
    assert entry.series["ttft_per_call_ms"] == (10.0,) * 50 and entry.figure("tpot_ms") == 2.0
    assert entry.figure("ttft_ms") == 10.0
    monkeypatch.setenv("REPLAY_TPOT", "2.4")
    result = pytester.runpytest(*QUICK, "--gpuperf-json", "out.json")
    result.assert_outcomes(failed=1)
    changes = {
        c["metric"]: c for c in json.loads((pytester.path / "out.json").read_text())["tests"][0]["baseline"]["changes"]
    }
    assert changes["tpot_ms"]["outcome"] == "regressed" and changes["tpot_ms"]["ratio"] == pytest.approx(1.2)
    assert changes["ttft_ms"]["outcome"] == "same"
    assert changes["tokens_per_s"]["gated"] is False


def test_without_gpuperf_generate_is_one_plain_call(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gen=DECODE_LOOP.format(tpot_budget=1))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_generation_budget_without_a_generation_is_unavailable(pytester: pytest.Pytester, tmp_path: Path) -> None:
    _conftest(pytester, ttft_ms=10.0, tpot_ms=2.0)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.gpu_budget(ttft_ms=15)
        def test_step(gpu_profiler):
            gpu_profiler(lambda: None)
        """
    )
    result = pytester.runpytest(*QUICK, "--gpuperf-json", "out.json")
    result.assert_outcomes(passed=1)
    (budget,) = json.loads((pytester.path / "out.json").read_text())["tests"][0]["budgets"]
    assert budget["status"] == "unavailable" and "gpu_profiler.generate" in budget["reason"]


def test_a_kv_pools_blocks_in_use_are_read_at_each_token() -> None:
    from pytest_gpuperf.cuda.kv_pool import KVPool
    from pytest_gpuperf.measuring.generation import kv_probe

    pool = KVPool(num_blocks=64, num_layers=2, num_kv_heads=2, block_size=4, head_dim=8, device="cpu")
    streamer = Streamer(Ticks(), kv_probe=kv_probe(pool))
    streamer.collect()
    streamer.begin_call()
    sequences = [pool.sequence() for _ in range(2)]
    for _ in range(6):  # two requests, six tokens each: two blocks of four slots each
        for seq in sequences:
            pool.extend(seq, 1)
        streamer.put([0, 0])
    for seq in sequences:
        pool.release(seq)  # freed at the end of the call: the peak during it counts
    streamer.end_call()
    g = generation_stats(streamer.calls(), "ticks", {})
    per_block_mb = pool.stats().bytes_per_block / 2**20
    assert g.kv_blocks_per_request == 2 and g.kv_mb_per_request == pytest.approx(2 * per_block_mb)
    with pytest.raises(GenerationError, match="expected a kv_pool"):
        kv_probe(object())


def test_each_generation_is_an_nvtx_range_with_prefill_and_decode_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_gpuperf.measuring import nvtx

    ranges: list[str] = []
    recorder = SimpleNamespace(push_range=ranges.append, pop_range=lambda: ranges.append("pop"))
    monkeypatch.setattr(nvtx, "_nvtx", lambda: recorder)
    streamer = Streamer(Ticks(), label="test_decode")
    streamer.begin_call()
    streamer.put(Shaped(1, 9))  # the prompt
    streamer.put(Shaped(1))
    streamer.put(Shaped(1))
    streamer.end_call()
    assert ranges == ["test_decode", "test_decode: prefill", "pop", "test_decode: decode", "pop", "pop"]
