"""Hypothesis strategies for trace-like JSON: the bad-input tests and the scanner's agreement tests."""

from __future__ import annotations

from hypothesis import strategies as st

# A JSON value of any shape, biased towards trace-like objects.
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5)
)
event = st.fixed_dictionaries(
    {},
    optional={
        "ph": st.sampled_from(["X", "i", "B", 3]),
        "cat": st.sampled_from(
            [
                "kernel",
                "gpu_memcpy",
                "gpu_memset",
                "cpu_op",
                "cuda_runtime",
                "cuda_driver",
                "user_annotation",
                "Kernel",
                5,
            ]
        ),
        "name": st.one_of(
            st.sampled_from(
                [
                    "ncclK",
                    "gemm",
                    "cudaMalloc",
                    "cudaGraphLaunch",
                    "cudaFree",
                    "cudaDeviceSynchronize",
                    "ProfilerStep#1",
                    "aten::mm",
                ]
            ),
            json_leaf,
        ),
        "ts": st.one_of(st.integers(-(10**20), 10**20), st.floats(-1e18, 1e18), json_leaf),
        "dur": st.one_of(st.integers(0, 10**6), st.floats(0, 1e6), json_leaf),
        "pid": json_leaf,
        "tid": json_leaf,
        "args": st.one_of(
            json_leaf,
            st.fixed_dictionaries(
                {},
                optional={
                    "correlation": st.one_of(st.integers(0, 5), json_leaf),
                    "device": st.one_of(st.integers(0, 2), json_leaf),
                    "stream": json_leaf,
                    "flops": json_leaf,
                    "Input Dims": st.lists(st.one_of(st.lists(st.integers(-2, 64), max_size=4), json_leaf), max_size=4),
                    "Input type": st.lists(
                        st.one_of(st.sampled_from(["float", "c10::BFloat16"]), json_leaf), max_size=4
                    ),
                },
            ),
        ),
    },
)
any_json = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
