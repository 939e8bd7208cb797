"""Bottleneck classes, their evidence and the fix to try first."""

from __future__ import annotations

from pytest_gpuperf import analyze, load
from pytest_gpuperf.analysis.results import Bottleneck
from tests.traces import cpu_op, kernel, runtime, trace

H100 = [{"id": 0, "name": "NVIDIA H100 80GB HBM3"}]


def classify(*events: object, **top: object) -> Bottleneck:
    m = analyze(load(trace(*events, **top))).primary  # type: ignore[arg-type]
    assert m is not None and m.classification is not None
    return m.classification


def busy_stream(n: int, name: str, start: float = 0.0, dur: float = 10.0, stream: int = 7) -> list[object]:
    return [kernel(start + i * dur, dur, name, stream=stream) for i in range(n)]


def test_host_launch_gaps_are_overhead_bound_with_graph_then_compile_advice() -> None:
    events: list[object] = []
    for i in range(10):  # 1 us kernels launched every 10 us, each launch after the previous kernel ended
        events += [runtime(i * 10.0, 1.0, corr=i + 1), kernel(i * 10.0 + 2, 1.0, "elementwise_kernel", corr=i + 1)]
    c = classify(*events)
    assert c.kind == "overhead-bound" and c.method == "trace"
    assert "CUDA graph" in c.fix and "torch.compile" in c.fix
    assert c.evidence[0].startswith("each launch gives the GPU 1.0 us of work")
    assert "waits for the host" in c.evidence[1]


def test_idle_gaps_not_caused_by_the_host_are_not_overhead() -> None:
    events: list[object] = [runtime(0, 1, corr=i + 1) for i in range(10)]  # everything launched up front
    events += [kernel(10 + i * 10.0, 2.0, "gemm", corr=i + 1) for i in range(10)]
    assert classify(*events).kind != "overhead-bound"


def test_exposed_communication_over_ten_percent_of_the_step_is_communication_bound() -> None:
    # GEMMs 0-80 us, then an all-reduce 80-100 us that nothing hides: 20% of the step.
    c = classify(*busy_stream(8, "gemm"), *busy_stream(2, "ncclDevKernel_AllReduce", start=80.0, stream=20))
    assert c.kind == "communication-bound"
    assert "overlap communication" in c.fix
    assert c.evidence[0] == (
        "exposed communication 20.0% of the step (NCCL kernels take 20.0% of kernel time, 0% of it overlapped by "
        "computation)"
    )
    assert "one rank's trace" in c.evidence[1]  # waiting for a peer cannot be told apart from one trace


def test_communication_hidden_behind_computation_is_overlapped_not_communication_bound() -> None:
    # The same all-reduce on its own stream while the GEMMs run: it costs the step nothing.
    c = classify(*busy_stream(8, "gemm"), *busy_stream(2, "ncclDevKernel_AllReduce", stream=20))
    assert c.kind != "communication-bound"
    assert any(
        s.startswith("communication overlapped: NCCL kernels take 20.0% of kernel time, 100% of it overlapped")
        for s in c.secondary
    )


def test_gemm_share_without_flops_is_a_labelled_heuristic() -> None:
    c = classify(
        *busy_stream(6, "sm90_xmma_gemm_bf16"), *busy_stream(4, "elementwise", start=60), deviceProperties=H100
    )
    assert (c.kind, c.method) == ("compute-bound", "heuristic")
    assert "no FLOP counts" in c.evidence[0]
    c = classify(*busy_stream(4, "gemm"), *busy_stream(6, "softmax", start=40))
    assert (c.kind, c.method) == ("memory-bound", "heuristic")


def mm(m: int, k: int, n: int, dtype: str = "c10::BFloat16") -> dict[str, object]:
    return cpu_op(0, 1, "aten::mm", **{"Input Dims": [[m, k], [k, n]], "Input type": [dtype, dtype]})


def test_roofline_uses_intensity_against_the_ridge_point_of_the_device() -> None:
    decode = classify(mm(1, 4096, 4096), *busy_stream(5, "gemm"), deviceProperties=H100)
    assert (decode.kind, decode.method) == ("memory-bound", "roofline")
    assert "H100 SXM ridge point 295" in decode.evidence[0]
    prefill = classify(mm(4096, 4096, 4096), *busy_stream(5, "gemm"), deviceProperties=H100)
    assert (prefill.kind, prefill.method) == ("compute-bound", "roofline")
    # fp32 operands have a far lower ridge (plain fp32 math): 64 FLOP/B is compute-bound there.
    fp32 = classify(mm(128, 128, 128, "float"), *busy_stream(5, "gemm"), deviceProperties=H100)
    assert fp32.kind == "compute-bound" and "ridge point 20 " in fp32.evidence[0]


def test_an_unknown_gpu_falls_back_to_the_heuristic_and_says_why() -> None:
    c = classify(mm(4096, 4096, 4096), *busy_stream(5, "gemm"), deviceProperties=[{"id": 0, "name": "Mystery GPU"}])
    assert c.method == "heuristic"
    assert "no peak rates known for Mystery GPU" in c.evidence[0]


def test_slow_allocator_calls_are_allocation_stalls_with_the_pool_advice() -> None:
    c = classify(runtime(0, 3000, "cudaMalloc"), runtime(3000, 2000, "cudaFree"), kernel(0, 10), kernel(9990, 10))
    assert c.kind == "allocation-stalls"
    assert "paged KV-cache block pool" in c.fix
    assert "1 cudaMalloc (worst 3.00 ms), 1 cudaFree (worst 2.00 ms)" in c.evidence[0]


def test_copy_dominated_steps_get_copy_advice() -> None:
    copies = [
        {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD", "ts": i * 10.0, "dur": 10.0, "args": {"device": 0}}
        for i in range(5)
    ]
    c = classify(*copies, kernel(50, 1))
    assert (c.kind, c.method) == ("memory-bound", "trace")
    assert "pinned memory" in c.fix


def test_secondary_findings_are_kept() -> None:
    events: list[object] = []
    for i in range(10):
        name = "ncclKernel" if i % 2 else "gemm"
        events += [runtime(i * 10.0, 1.0, corr=i + 1), kernel(i * 10.0 + 2, 2.0, name, corr=i + 1)]
    c = classify(*events)
    assert c.kind == "overhead-bound"
    assert any(s.startswith("communication-bound") for s in c.secondary)


def test_the_unprofiled_step_time_overrides_profiler_widened_gaps() -> None:
    # In the profiled trace the host (slowed by the profiler) leaves the GPU idle half
    # the time; timed without the profiler the step is no longer than its GPU work.
    events: list[object] = []
    for i in range(10):
        events += [runtime(i * 20.0, 1.0, corr=i + 1), kernel(i * 20.0 + 2, 10.0, "gemm", corr=i + 1)]
    t = load(trace(*events))
    # 10 us of GPU work per launch: host and GPU take about as long; the trace waits half the time.
    assert analyze(t).primary.classification.kind == "mixed"  # type: ignore[union-attr]
    timed = analyze(t, step_ms=0.1).primary  # 100 us busy in a 0.1 ms step: no idle
    assert timed is not None and timed.classification is not None
    assert timed.classification.kind != "overhead-bound"
    slow = analyze(t, step_ms=0.4).primary  # the real step is 4x its GPU work: the host is involved after all
    assert slow is not None and slow.classification is not None
    assert slow.classification.kind == "mixed" and slow.host_wait_pct == 75.0
    assert "timed without the profiler" in slow.classification.evidence[1]


def test_a_step_that_waits_on_the_host_part_of_the_time_is_mixed_and_says_both() -> None:
    # 10 us GEMMs every 20 us, the next launch always after the gap: the GPU waits half the step.
    events: list[object] = []
    for i in range(10):
        events += [runtime(i * 20.0 + 9.0, 1.0, corr=i + 1), kernel(i * 20.0 + 10.0, 10.0, "gemm", corr=i + 1)]
    device = analyze(load(trace(*events))).primary
    assert device is not None and device.classification is not None
    c = device.classification
    assert c.kind == "mixed" and 25 <= device.host_wait_pct < 75
    assert "waits for the host" in c.evidence[1] and "compute-bound" in c.evidence[-1]
    assert (
        c.fix.startswith("for the host's part, capture the step as a CUDA graph")
        and "for the GPU's (compute-bound)" in c.fix
    )


def test_memory_bound_advice_comes_from_the_operators_the_step_runs() -> None:
    # A CNN's memory-bound step (batch norm, activations) is told nothing of attention or KV caches.
    cnn = classify(*busy_stream(10, "cudnn::bn_fw_inf_1C11_kernel_NHWC"), *busy_stream(5, "relu_kernel", start=100))
    assert cnn.kind == "memory-bound"
    assert "batch norm folded into the convolutions" in cnn.fix
    assert "attention" not in cnn.fix and "KV cache" not in cnn.fix
    # A decoder's attention kernels bring the attention and KV-cache remedies.
    decoder = classify(*busy_stream(10, "flash_fwd_splitkv_kernel"), *busy_stream(5, "rms_norm_kernel", start=100))
    assert decoder.kind == "memory-bound"
    assert "grouped-query attention and an FP8 KV cache" in decoder.fix and "convolution" not in decoder.fix
    # Nothing recognised: the general remedy.
    plain = classify(*busy_stream(10, "my_kernel"))
    assert plain.kind == "memory-bound"
    assert plain.fix.startswith("move fewer bytes: lower-precision tensors, and fused kernels (torch.compile)")


def test_a_recorded_decode_graph_gets_the_decoder_remedies_only() -> None:
    # Its attention runs in cuDNN (cudnn_generated_..._sdpa_..._flash_fprop): no convolution advice for it.
    from tests.traces import DATA

    found = analyze(load(str(DATA / "decode_graph.json.gz"))).primary
    assert found is not None and found.classification is not None
    fix = found.classification.fix
    assert fix.startswith("move fewer bytes: quantized weights") and "FP8 KV cache for its attention" in fix
    assert "convolution" not in fix
