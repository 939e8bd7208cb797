"""Real model code under gpuperf: HF transformers, timm, torch.compile, CUDA graphs, and two
plain steps at the edges (a small matmul whose launch costs as much as its work, a large copy).

Budgets hold on any machine of the kind with room to spare (they catch a step gone badly
wrong, not 5%); the baselines in ``baselines/`` catch the small changes. Run:
``pytest --gpuperf examples/real`` (``pip install -e ".[examples]"`` for transformers and timm).
"""

from __future__ import annotations

import pytest
import torch

from examples.real.conftest import CHANGE, DEVICE, DTYPE, ON_GPU

needs_gpu = pytest.mark.skipif(not ON_GPU, reason="torch.compile examples run on a GPU (CPU inductor builds are slow)")
TOKENS = 128 if ON_GPU else 16
CNN_BATCH, CNN_SIZE = (64, 224) if ON_GPU else (2, 64)


@pytest.mark.gpu_budget(p99_ms=200, peak_mem_mb=8192)
def test_hf_decoder_forward(gpu_profiler, hf_decoder) -> None:
    ids = torch.randint(0, hf_decoder.config.vocab_size, (1, TOKENS), device=DEVICE)

    @torch.inference_mode()
    def forward() -> torch.Tensor:
        logits = hf_decoder(input_ids=ids, use_cache=False).logits
        if CHANGE == "host_sync":
            logits[0, -1].argmax().item()  # the next token, read back: the host waits for the GPU
        return logits

    logits = gpu_profiler(forward, items=TOKENS)
    assert logits.shape == (1, TOKENS, hf_decoder.config.vocab_size)


class MatmulLogits:
    """A logits processor with device work of its own (as a reranker or a penalty over a learned
    matrix would have): one square matmul per decode step, folded into the scores as zero."""

    def __init__(self, size: int) -> None:
        self.a = torch.randn(size, size, device=DEVICE, dtype=DTYPE)
        self.out = torch.empty_like(self.a)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        torch.mm(self.a, self.a, out=self.out)
        return scores + self.out[0, 0] * 0


@pytest.mark.gpu_budget(p99_ms=2000, peak_mem_mb=8192)
def test_hf_generate(gpu_profiler, hf_decoder) -> None:
    transformers = pytest.importorskip("transformers")
    new_tokens = 16 if ON_GPU else 4
    ids = torch.randint(0, hf_decoder.config.vocab_size, (1, 32), device=DEVICE)
    size = (3072 if CHANGE == "generate_gpu_work" else 1024) if ON_GPU else 64
    processors = transformers.LogitsProcessorList([MatmulLogits(size)])

    @torch.inference_mode()
    def generate() -> torch.Tensor:
        return hf_decoder.generate(
            ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
            logits_processor=processors, pad_token_id=0,
        )  # fmt: skip

    out = gpu_profiler(generate, items=new_tokens)
    assert out.shape == (1, 32 + new_tokens)


@pytest.mark.gpu_budget(p99_ms=500, peak_mem_mb=16384)
def test_timm_cnn_forward(gpu_profiler, cnn) -> None:
    images = torch.randn(CNN_BATCH, 3, CNN_SIZE, CNN_SIZE, device=DEVICE, dtype=DTYPE)
    images = images.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def forward() -> torch.Tensor:
        return cnn(images)

    out = gpu_profiler(forward, items=CNN_BATCH)
    assert out.shape == (CNN_BATCH, 1000)


@pytest.mark.gpu_budget(p99_ms=100)
def test_cuda_graph_of_a_library_model(gpu_profiler, cuda_graph, cnn) -> None:
    images = torch.randn(8, 3, 224, 224, device=DEVICE, dtype=DTYPE).to(memory_format=torch.channels_last)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return cnn(x)

    step = cuda_graph(forward, images)
    out = gpu_profiler(step, images, items=8)
    assert out.shape == (8, 1000)


class MLP(torch.nn.Module):
    """A transformer block's MLP: norm, up-projection, GELU, down-projection, residual."""

    def __init__(self, dim: int = 1024) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(dim)
        self.up = torch.nn.Linear(dim, 4 * dim)
        self.down = torch.nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if CHANGE == "cudagraph_skip":
            x.mul_(1.0)  # an input mutated in place: reduce-overhead does not capture this graph
        hidden = torch.nn.functional.gelu(self.up(self.norm(x)))
        if CHANGE == "graph_break":
            torch._dynamo.graph_break()  # the step now runs as two graphs with Python between them
        return x + self.down(hidden)


def after_model(out: torch.Tensor) -> torch.Tensor:
    """The step's own code after the compiled model; the A/B change adds one eager kernel here."""
    return out.mul_(1.0001) if CHANGE == "extra_kernel" else out


def compiled_mlp(mode: str) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = MLP().to(device=DEVICE, dtype=torch.bfloat16).eval()
    x = torch.randn(8, 256, 1024, device=DEVICE, dtype=torch.bfloat16)
    return torch.compile(model, mode=mode), x


@needs_gpu
@pytest.mark.gpu_budget(p99_ms=20, graph_breaks_max=0, recompiles_max=0)
def test_torch_compile_default(gpu_profiler) -> None:
    model, x = compiled_mlp("default")

    def step() -> torch.Tensor:
        with torch.inference_mode():
            return after_model(model(x))

    out = gpu_profiler(step, items=x.shape[0] * x.shape[1])
    assert out.shape == x.shape


@needs_gpu
@pytest.mark.gpu_budget(p99_ms=20, graph_breaks_max=0, cudagraph_skips_max=0)
def test_torch_compile_reduce_overhead(gpu_profiler) -> None:
    model, x = compiled_mlp("reduce-overhead")

    def step() -> torch.Tensor:
        with torch.inference_mode():
            return after_model(model(x).clone())  # the output lives in cudagraph memory: keep a copy

    out = gpu_profiler(step, items=x.shape[0] * x.shape[1])
    assert out.shape == x.shape


@pytest.mark.gpu_budget(p99_ms=50)
def test_small_matmul_at_the_host_gpu_boundary(gpu_profiler) -> None:
    # fp32 1024^3: about 60 us on an H100, about what the host takes to launch it.
    torch.manual_seed(0)
    a, b = (torch.randn(1024, 1024, device=DEVICE) for _ in range(2))
    out = gpu_profiler(torch.matmul, a, b)
    assert out.shape == (1024, 1024)


@pytest.mark.gpu_budget(p99_ms=100)
def test_large_copy(gpu_profiler) -> None:
    mib = (1024 if ON_GPU else 64) * (11 if CHANGE == "bigger_copy" else 10) // 10
    source = torch.ones(mib * 2**20 // 4, device=DEVICE)
    target = torch.empty_like(source)
    gpu_profiler(target.copy_, source, items=mib * 2**20)
    assert bool(target[-1] == 1)
