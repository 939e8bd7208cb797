"""What the plugin claims about GPUs, shown on a GPU (skipped without CUDA).

These check relations that hold on any GPU, each within one run: the graph
step's median agrees with triton's do_bench, eager decode is overhead-bound and
its graph is not, and a budget between a step and the same step with 5% more
GPU work passes the one and fails the other, every time.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_gpuperf.measuring.config import ProtocolConfig
from pytest_gpuperf.measuring.protocol import Measurement, measure
from tests.helpers import DEFAULTS

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def torch() -> Any:
    import torch

    return torch


@pytest.fixture(scope="module")
def backend(torch: Any) -> Any:
    from pytest_gpuperf.cuda.backend import CudaBackend

    return CudaBackend()


@pytest.fixture(scope="module")
def decoder(torch: Any) -> Any:
    from examples.tiny_llama import Decoder, build

    model = build()
    decoder = Decoder(model, batch=1)
    decoder.prefill(torch.randint(0, model.cfg.vocab, (1, 128), device="cuda"))
    return decoder


@pytest.fixture(scope="module")
def graph_step(torch: Any, decoder: Any) -> Callable[[], None]:
    from pytest_gpuperf.cuda.graphs import CudaGraphStep

    return CudaGraphStep(decoder.decode_step)


def run(
    backend: Any,
    step: Callable[[], Any],
    tmp_path: Path,
    budget: dict[str, float] | None = None,
    config: ProtocolConfig = DEFAULTS,
) -> Measurement:
    return measure(
        backend,
        step,
        config,
        test_id="t",
        budget=budget or {},
        items=None,
        trace_path=tmp_path / f"{len(list(tmp_path.iterdir()))}.pt.trace.json.gz",
    )


def test_graph_step_median_agrees_with_triton_do_bench(backend: Any, graph_step: Any, tmp_path: Path) -> None:
    # do_bench clears the L2 cache before every call; --gpuperf-flush-l2 does the same.
    from triton.testing import do_bench

    from pytest_gpuperf.cuda.backend import CudaBackend

    cold = run(CudaBackend(flush_l2=True), graph_step, tmp_path).p50.value
    warm = run(backend, graph_step, tmp_path).p50.value
    theirs = do_bench(graph_step, warmup=100, rep=500, return_mode="median")
    print(
        f"graph decode step p50: gpuperf cold L2 {cold:.4f} ms, do_bench {theirs:.4f} ms, ratio "
        f"{cold / theirs:.4f}; gpuperf warm L2 (default) {warm:.4f} ms"
    )
    # Ratios seen on the H100: 0.9931-0.9955. The margin is three times the largest gap, so
    # only a real disagreement fails; warm vs cold L2 (0.07% apart, either way) is printed, not
    # asserted: that relation is for benchmarks/timing_truth.py.
    assert cold == pytest.approx(theirs, rel=0.03)


def test_eager_decode_is_overhead_bound_and_its_graph_is_not(
    backend: Any, decoder: Any, graph_step: Any, tmp_path: Path
) -> None:
    eager = run(backend, decoder.decode_step, tmp_path)
    graph = run(backend, graph_step, tmp_path)
    assert eager.trace is not None and graph.trace is not None
    e, g = eager.trace.primary, graph.trace.primary
    assert e is not None and e.classification is not None and g is not None and g.classification is not None
    print(
        f"eager: {eager.p50.value:.3f} ms, {e.gpu_active_pct:.1f}% active, dispatch {e.dispatch_ratio:.2f}, "
        f"{e.classification.kind}; graph: {graph.p50.value:.3f} ms, {g.gpu_active_pct:.1f}% active, "
        f"dispatch {g.dispatch_ratio:.2f}, {g.classification.kind}"
    )
    assert e.classification.kind == "overhead-bound"
    assert "CUDA graph" in e.classification.fix
    assert g.classification.kind != "overhead-bound"
    assert graph.p50.value < eager.p50.value
    assert g.device_ops == e.device_ops  # the same work (a graph may turn a copy into a kernel)
    assert graph.rounds_info.new_allocations == 0  # a replayed graph allocates nothing
    assert graph.rounds_info.peak_mem_mb is not None and graph.rounds_info.peak_mem_mb > 0


def _sleep_cycles_for(torch: Any, ms: float) -> int:
    """torch.cuda._sleep spins the GPU for a number of cycles: calibrate cycles per ms."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    cycles = 1_000_000
    torch.cuda._sleep(cycles)  # warm
    times = []
    for _ in range(5):
        start.record()
        torch.cuda._sleep(cycles)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return int(cycles * ms / statistics.median(times))


def test_a_budget_between_a_step_and_five_percent_more_gpu_work_separates_them_every_time(
    torch: Any, backend: Any, graph_step: Any, tmp_path: Path
) -> None:
    base = run(backend, graph_step, tmp_path).p50.value
    cycles = _sleep_cycles_for(torch, 0.05 * base)

    def delayed() -> None:
        graph_step()
        torch.cuda._sleep(cycles)

    budget = {"p50_ms": base * 1.025}  # halfway between the step and the step + 5%
    verdicts = []
    for _ in range(5):
        plain = run(backend, graph_step, tmp_path, budget).budgets[0]
        slow = run(backend, delayed, tmp_path, budget).budgets[0]
        verdicts.append((plain.status, slow.status))
        print(
            f"budget {budget['p50_ms']:.4f} ms: step {plain.value:.4f} ms {plain.status}, "
            f"+5% {slow.value:.4f} ms {slow.status}"
        )
    assert verdicts == [("pass", "fail")] * 5


def test_pytest_benchmark_under_gpuperf_waits_for_the_gpu(pytester: pytest.Pytester) -> None:
    # Both timings in one process, after the same sustained load (a GEMM drifts as the card warms).
    pytester.makepyfile(
        """
        import json
        import torch

        A = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
        B = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)

        def test_gemm(benchmark):
            benchmark(torch.matmul, A, B)

        def test_gemm_gpuperf(gpu_profiler, request):
            gpu_profiler(torch.matmul, A, B)
        """
    )
    pytester.runpytest_subprocess("--benchmark-json", "plain.json").assert_outcomes(passed=2)
    pytester.runpytest_subprocess(
        "--gpuperf", "--benchmark-json", "synced.json", "--gpuperf-json", "g.json", "--gpuperf-rounds", "30"
    ).assert_outcomes(passed=2)

    def median_ms(name: str) -> float:
        return float(json.loads((pytester.path / name).read_text())["benchmarks"][0]["stats"]["median"]) * 1000

    plain, synced = median_ms("plain.json"), median_ms("synced.json")
    events_ms = json.loads((pytester.path / "g.json").read_text())["tests"][0]["p50_ms"]["value"]
    print(
        f"4096 bf16 GEMM: gpuperf (CUDA events) {events_ms:.4f} ms; pytest-benchmark {plain:.4f} ms; "
        f"pytest-benchmark under --gpuperf {synced:.4f} ms"
    )
    # Synchronized, it times the GEMM itself. It reads a little high, and by a varying amount
    # (0.99x to 1.25x seen on an H100): pytest-benchmark idles the GPU between its rounds,
    # while gpuperf's calls run back to back.
    # Synchronized pytest-benchmark read 0.99-1.25x the events (it idles the GPU between rounds):
    # the bound is the relation (it times the work, not the launch), with room for that spread.
    assert 0.9 * events_ms <= synced <= 2.0 * events_ms
    assert plain < 0.5 * events_ms  # the host clock times the launch, not the work


def test_cuda_graph_copies_inputs_replays_and_pads_to_the_captured_batch(torch: Any) -> None:
    from pytest_gpuperf.cuda.graphs import CudaGraphStep

    weight = torch.randn(64, 64, device="cuda")
    step = CudaGraphStep(lambda x: x @ weight, torch.randn(8, 64, device="cuda"), batch_sizes=(2, 8))
    assert step.graph_for(1) == 2 and step.graph_for(3) == 8
    for batch in (1, 2, 5, 8):
        x = torch.randn(batch, 64, device="cuda")
        out = step(x)
        assert out.shape == (batch, 64)
        torch.testing.assert_close(out, x @ weight)


def test_cuda_graph_capture_failures_name_the_cause_and_the_fix(torch: Any) -> None:
    from pytest_gpuperf.cuda.graphs import CudaGraphStep, GraphCaptureError

    x = torch.randn(4, device="cuda")
    # The failure names the step's own line that blocked the capture.
    with pytest.raises(GraphCaptureError, match=r"synchronizes with the host at .*test_gpu\.py:\d+ `.*\.item\(\)"):
        CudaGraphStep(lambda t: t * 2 if t.sum().item() > 0 else t, x)
    with pytest.raises(GraphCaptureError, match="input 0 is on cpu: a CUDA graph reads device memory only"):
        CudaGraphStep(lambda t: t * 2, torch.randn(4))
    # The failed capture left the process as it was: the same stream, and random ops still work.
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    step = CudaGraphStep(lambda t: torch.nn.functional.dropout(t * 2, 0.5), torch.randn(4, 8, device="cuda"))
    assert step(torch.ones(4, 8, device="cuda")).shape == (4, 8)
    with pytest.raises(GraphCaptureError, match=r"input 0 has shape \(4, 9\); the graph was captured for"):
        step(torch.randn(4, 9, device="cuda"))


def test_a_steady_paged_decode_loop_allocates_no_device_memory(torch: Any, decoder: Any) -> None:
    from examples.tiny_llama import PagedDecoder
    from pytest_gpuperf.cuda.kv_pool import KVPool

    cfg = decoder.model.cfg
    pool = KVPool(
        num_blocks=cfg.max_seq // 16,
        num_layers=cfg.layers,
        num_kv_heads=cfg.kv_heads,
        block_size=16,
        head_dim=cfg.head_dim,
        dtype=torch.bfloat16,
        device="cuda",
    )
    paged = PagedDecoder(decoder.model, pool, max_tokens=256)
    paged.prefill(torch.randint(0, cfg.vocab, (1, 128), device="cuda"))
    for _ in range(300):  # warm: the sequence cycles between the prompt and 256 tokens
        paged.decode_step()
    torch.cuda.synchronize()
    before = torch.cuda.memory_stats()["segment.all.allocated"]
    for _ in range(600):
        paged.decode_step()
    torch.cuda.synchronize()
    assert torch.cuda.memory_stats()["segment.all.allocated"] == before


def test_a_failing_memory_budget_names_the_blocks_held_at_the_peak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_peak="""
        import pytest
        import torch

        X = torch.randn(1024, 1024, device="cuda")

        def grow():
            scratch = torch.empty(64 * 2**20 // 4, device="cuda")  # 64 MiB, held to the step's end
            return (X @ X).sum() + scratch.fill_(1.0).sum()

        @pytest.mark.gpu_budget(peak_mem_mb=1)
        def test_peak(gpu_profiler):
            gpu_profiler(grow)
        """
    )
    result = pytester.runpytest_subprocess("--gpuperf", "--gpuperf-trace-dir", "traces")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*memory at the peak on cuda:0: * allocated, * held from before the step, * made in the step",
            "*64.0 MiB by aten::empty, at test_peak.py(*): grow",
            "*memory timeline: traces/test_peak.py_test_peak-*.memory.html",
        ]
    )
    timelines = list((pytester.path / "traces").glob("*.memory.*"))
    assert sorted(p.suffix for p in timelines) == [".gz", ".html"]  # the trace, the timeline (matplotlib)


def test_gpuperf_ncu_names_the_top_kernels_with_their_throughput(pytester: pytest.Pytester) -> None:
    from pytest_gpuperf.measuring.ncu import find_ncu

    if find_ncu() is None:
        pytest.skip("Nsight Compute (ncu) is not installed")
    pytester.makepyfile(
        test_gemm="""
        import pytest
        import torch

        A = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)

        @pytest.mark.gpu_budget(p99_ms=0.001)
        def test_gemm(gpu_profiler):
            gpu_profiler(lambda: torch.relu(A @ A))
        """
    )
    result = pytester.runpytest_subprocess("--gpuperf", "--gpuperf-ncu", "--gpuperf-trace-dir", "traces")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*Nsight Compute, one call of the step (2 kernel launches; *), top 2 by time:",
            "*: 0.* ms: compute *%, memory *%, DRAM *% of peak",
            "*ncu's table: traces/test_gemm.py_test_gemm-*.ncu.csv",
        ]
    )


HF_GENERATE = """
import json
import os

import pytest
import torch

transformers = pytest.importorskip("transformers")

NEW_TOKENS = 32
BUDGET = dict(
    ttft_ms=float(os.environ.get("GEN_TTFT_BUDGET", "1e9")), tpot_ms=float(os.environ.get("GEN_TPOT_BUDGET", "1e9"))
)


def llama(variant):
    config = transformers.LlamaConfig(
        vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=4,
        num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=2048,
    )
    config._attn_implementation = os.environ.get("GEN_ATTENTION", "sdpa")
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).to(device="cuda", dtype=torch.bfloat16).eval()
    if variant == "compiled":
        model.forward = torch.compile(model.forward, dynamic=True)
    return model


class EventStreamer:
    # The test's own timing: a CUDA event at the call's start and at each put after the prompt.
    def __init__(self):
        self.calls = []

    def start(self):
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        self.calls.append([event])

    def put(self, value):
        if len(self.calls[-1]) == 1 and value.dim() == 2 and value.shape[1] > 1:
            return  # the prompt
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        self.calls[-1].append(event)

    def end(self):
        pass

    def times(self):
        torch.cuda.synchronize()
        out = []
        for start, *tokens in self.calls:
            ms = [start.elapsed_time(t) for t in tokens]
            out.append({"ttft_ms": ms[0], "tpot_ms": (ms[-1] - ms[0]) / (len(ms) - 1)})
        return out


def timed_generate(model, ids, mine, streamer):
    mine.start()
    with torch.inference_mode():
        return model.generate(
            ids, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
            streamer=streamer, pad_token_id=0,
        )


@pytest.mark.parametrize("variant", ["eager", "compiled"])
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.gpu_budget(**BUDGET)
def test_generate(gpu_profiler, variant, batch, request):
    if variant not in os.environ.get("GEN_VARIANTS", "eager,compiled"):
        pytest.skip("not asked for")
    model = llama(variant)
    prompt = int(os.environ.get("GEN_PROMPT", "32"))
    ids = torch.randint(0, 32000, (batch, prompt), device="cuda")
    mine = EventStreamer()
    out = gpu_profiler.generate(timed_generate, model, ids, mine, streamer=mine)
    assert out.shape == (batch, prompt + NEW_TOKENS)
    with open(f"own-{variant}-{batch}.json", "w") as f:
        json.dump(mine.times(), f)
"""


def _generation_report(pytester: pytest.Pytester, name: str) -> dict[str, dict[str, Any]]:
    report = json.loads((pytester.path / name).read_text())
    return {t["test"].split("::")[-1]: t for t in report["tests"]}


def test_ttft_and_tpot_agree_with_the_tests_own_cuda_events_in_every_timed_call(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_hf_generate=HF_GENERATE)
    result = pytester.runpytest_subprocess("--gpuperf", "--gpuperf-json", "g.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    profiled_calls = 1 + 3  # the profiled pass: a warmup step and three steps, after the timed rounds
    for test, row in _generation_report(pytester, "g.json").items():
        g = row["generation"]
        variant, batch = test.removeprefix("test_generate[").removesuffix("]").split("-")[::-1]
        own = json.loads((pytester.path / f"own-{variant}-{batch}.json").read_text())
        timed = own[-(g["calls"] + profiled_calls) : -profiled_calls]
        print(f"{test}: {g['calls']} calls, TTFT p50 {g['ttft_ms']['p50']['value']:.3f} ms, "
              f"TPOT p50 {g['tpot_ms']['p50']['value']:.3f} ms, {row['compiles']}")  # fmt: skip
        assert g["requests"] == g["calls"] * int(batch)
        for mine, ttft, tpot in zip(timed, g["ttft_per_call_ms"], g["tpot_per_call_ms"], strict=True):
            assert ttft == pytest.approx(mine["ttft_ms"], rel=0.02)
            assert tpot == pytest.approx(mine["tpot_ms"], rel=0.02)


DECODE_LOOP = """
import json
import os

import pytest
import torch

transformers = pytest.importorskip("transformers")

CACHED = os.environ.get("GEN_KV_CACHE", "1") == "1"


@pytest.fixture(scope="module")
def model():
    config = transformers.LlamaConfig(
        vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=8,
        num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).to(device="cuda", dtype=torch.bfloat16).eval()


def greedy(model, ids, streamer, steps=16):
    # A decode loop of the test's own: prefill, then one token per step, each put to the streamer
    # on the GPU (no host sync). Uncached, each step recomputes the whole sequence.
    with torch.inference_mode():
        out = model(ids, use_cache=True)
        cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        streamer.put(token)
        sequence = torch.cat([ids, token], 1)
        for _ in range(steps - 1):
            if CACHED:
                out = model(token, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
            else:
                out = model(sequence, use_cache=False)
            token = out.logits[:, -1:].argmax(-1)
            streamer.put(token)
            sequence = torch.cat([sequence, token], 1)
    return sequence


@pytest.mark.gpu_budget(
    ttft_ms=float(os.environ.get("GEN_TTFT_BUDGET", "1e9")), tpot_ms=float(os.environ.get("GEN_TPOT_BUDGET", "1e9"))
)
def test_decode_loop(gpu_profiler, model):
    ids = torch.randint(0, 32000, (8, 1024), device="cuda")
    assert gpu_profiler.generate(greedy, model, ids).shape == (8, 1024 + 16)
"""


def test_decoding_without_the_kv_cache_fails_tpot_and_not_ttft(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A decode-only change in a decode loop: without the KV cache every step recomputes the whole
    # sequence; the prefill, and so the first token, is the same forward. (Eager attention instead
    # of SDPA, tried first in HF generate, did not slow a small model's host-paced decode:
    # TTFT 10.60 -> 9.25 ms, TPOT 6.69 -> 6.57 ms between two fresh processes on the H200.)
    pytester.makepyfile(test_decode_loop=DECODE_LOOP)
    args = ("--gpuperf", "-p", "no:cacheprovider")
    pytester.runpytest_subprocess(*args, "--gpuperf-json", "cached.json", "--gpuperf-update-baselines")
    cached = _generation_report(pytester, "cached.json")["test_decode_loop"]["generation"]
    ttft, tpot = cached["ttft_ms"]["p50"]["value"], cached["tpot_ms"]["p50"]["value"]
    # Budgets from that run, with room for the host's speed between fresh processes (an HF
    # generate's TTFT read 6.8 and 10.6 ms in two): 1.5x on prefill, 1.3x on decode.
    monkeypatch.setenv("GEN_TTFT_BUDGET", str(1.5 * ttft))
    monkeypatch.setenv("GEN_TPOT_BUDGET", str(1.3 * tpot))
    monkeypatch.setenv("GEN_KV_CACHE", "0")
    result = pytester.runpytest_subprocess(*args, "--gpuperf-json", "uncached.json")
    result.assert_outcomes(failed=1)
    row = _generation_report(pytester, "uncached.json")["test_decode_loop"]
    budgets = {b["key"]: b for b in row["budgets"]}
    changes = {c["metric"]: c for c in row["baseline"]["changes"]}
    uncached = row["generation"]
    print(
        f"with the KV cache: TTFT {ttft:.3f} ms, TPOT {tpot:.3f} ms; without: "
        f"TTFT {uncached['ttft_ms']['p50']['value']:.3f} ms, TPOT {uncached['tpot_ms']['p50']['value']:.3f} ms; "
        + ", ".join(f"{m} {changes[m]['ratio']:.3f} {changes[m]['outcome']}" for m in ("ttft_ms", "tpot_ms"))
    )
    print(result.stdout.str()[-5000:])
    assert budgets["tpot_ms"]["status"] == "fail"
    assert budgets["ttft_ms"]["status"] == "pass"
