"""The fixtures: gpu_profiler, cuda_graph and kv_pool (the last two import torch when used)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_gpuperf.judging.text import brief, finite
from pytest_gpuperf.measuring.generation import Generation, Streamer, VllmCalls, kv_probe, slo_of
from pytest_gpuperf.measuring.nvtx import nvtx_range
from pytest_gpuperf.stash import BUDGET_KEY, SESSION_KEY

if TYPE_CHECKING:
    from pytest_gpuperf.session import GpuperfSession

T = TypeVar("T")


class GpuProfiler:
    """``gpu_profiler(fn, *args, items=None, **kwargs)`` returns ``fn(*args, **kwargs)``.

    Under ``--gpuperf`` the call is measured (warmup, timed rounds, one profiled
    pass) and checked against the test's gpu_budget; the value returned is that of
    the last call. Without ``--gpuperf`` it is one plain call. ``items`` is the
    work per call (tokens, samples) for throughput.
    """

    def __init__(self, item: pytest.Item, session: GpuperfSession | None) -> None:
        self._item = item
        self._session = session

    def __call__(self, fn: Callable[..., T], *args: Any, items: float | None = None, **kwargs: Any) -> T:
        check_items(items)
        if self._session is None:  # no --gpuperf: one plain call
            return fn(*args, **kwargs)
        last: list[T] = []

        def step() -> None:
            last[:] = [fn(*args, **kwargs)]

        self._session.measure(self._item, step, items)
        return last[0]

    def generate(
        self,
        fn: Callable[..., T],
        *args: Any,
        slo: Mapping[str, float] | None = None,
        kv_pool: Any = None,
        **kwargs: Any,
    ) -> T:
        """``gpu_profiler.generate(fn, *args, slo=None, kv_pool=None, **kwargs)`` returns
        ``fn(*args, streamer=..., **kwargs)`` and, under ``--gpuperf``, measures it as a
        generation: ``fn`` is HF transformers' ``model.generate`` (which calls the streamer per
        token) or a decode loop that calls ``streamer.put(new_tokens)`` once per step. Each
        token is marked with a CUDA event; TTFT, TPOT, ITL, end to end, tokens/s and goodput
        (against ``slo``, else the ttft_ms and tpot_ms budgets) are judged against the
        test's gpu_budget and baseline. ``kv_pool``: a kv_pool whose blocks in use are read
        at each token. A ``streamer=`` of the test's own is called too."""
        also = kwargs.pop("streamer", None)
        session = self._session
        if session is None:  # no --gpuperf: one plain call, the test's own streamer (if any) passed on
            return fn(*args, streamer=Streamer(None, also=also), **kwargs)
        streamer = Streamer(session.backend.token_clock(), self._item.name, kv_probe(kv_pool), also=also)
        last: list[T] = []

        def step() -> None:
            streamer.begin_call()
            try:
                last[:] = [fn(*args, streamer=streamer, **kwargs)]
            finally:
                streamer.end_call()

        budget: dict[str, float] = self._item.stash.get(BUDGET_KEY, {})
        session.measure(self._item, step, None, Generation(streamer, slo_of(budget, slo)))
        return last[0]

    def generate_vllm(
        self, fn: Callable[..., T], *args: Any, slo: Mapping[str, float] | None = None, **kwargs: Any
    ) -> T:
        """``gpu_profiler.generate_vllm(llm.generate, prompts, sampling_params, slo=None)``:
        measures vLLM's ``LLM.generate`` from the per-request metrics it returns (vLLM's own
        clock; make the LLM with ``disable_log_stats=False``). No per-token times: no ITL."""
        session = self._session
        if session is None:
            return fn(*args, **kwargs)
        calls = VllmCalls()
        last: list[T] = []

        def step() -> None:
            outputs = fn(*args, **kwargs)
            calls.add(outputs)  # type: ignore[arg-type]  # LLM.generate returns a list of RequestOutput
            last[:] = [outputs]

        budget: dict[str, float] = self._item.stash.get(BUDGET_KEY, {})
        session.measure(self._item, step, None, Generation(calls, slo_of(budget, slo)))
        return last[0]

    def region(self, name: str) -> AbstractContextManager[Any]:
        """An NVTX range around part of a step, shown by name in Nsight Systems."""
        return nvtx_range(name)


def check_items(items: object) -> None:
    """``items=`` is work per call: a finite number above 0 (NaN or inf would be written
    into a baseline that could then not be read back)."""
    if items is None:
        return
    number = finite(items)
    if number is None or number <= 0:
        raise ValueError(f"gpu_profiler: items must be a finite number above 0, not {brief(items)}")


@pytest.fixture
def gpu_profiler(request: pytest.FixtureRequest) -> GpuProfiler:
    """Measure a step: ``gpu_profiler(step, *args, items=None, **kwargs)``."""
    session: GpuperfSession | None = request.config.stash.get(SESSION_KEY, None)
    return GpuProfiler(request.node, session)


@pytest.fixture
def cuda_graph() -> Callable[..., Any]:
    """Capture a step as a CUDA graph: ``g = cuda_graph(step, *example_inputs, batch_sizes=None)``;
    ``g(*inputs)`` copies the inputs into static buffers, replays and returns the static outputs.
    Skips the test where torch sees no CUDA device."""
    from pytest_gpuperf.cuda.host import cuda_missing, torch_version

    if cuda_missing() is not None:
        pytest.skip(f"cuda_graph needs a CUDA device; torch {torch_version()} sees none")
    from pytest_gpuperf.cuda.graphs import CudaGraphStep

    def capture(step: Callable[..., Any], *example_inputs: Any, **options: Any) -> CudaGraphStep:
        return CudaGraphStep(step, *example_inputs, **options)

    return capture


@pytest.fixture
def kv_pool() -> Callable[..., Any]:
    """Make a preallocated paged KV-cache pool: ``kv_pool(num_blocks=, num_layers=, num_kv_heads=,
    block_size=, head_dim=, dtype=, device=)``; without ``device=``, CUDA where torch sees it, else the CPU."""
    from pytest_gpuperf.cuda.kv_pool import KVPool

    def make(**options: Any) -> KVPool:
        return KVPool(**options)

    return make
